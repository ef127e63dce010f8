package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	other := errors.New("something else")
	for _, tc := range []struct {
		name      string
		err       error
		anonymous bool
		kind      error
		contains  []string
	}{
		{"401 anonymous", &transport.Error{StatusCode: http.StatusUnauthorized}, true, ErrUnauthorized,
			[]string{"unauthorized", "registry reg:5000", "requires authentication"}},
		{"401 with creds", &transport.Error{StatusCode: http.StatusUnauthorized}, false, ErrUnauthorized,
			[]string{"registry reg:5000 rejected the credentials"}},
		{"UNAUTHORIZED code", &transport.Error{StatusCode: http.StatusBadRequest,
			Errors: []transport.Diagnostic{{Code: transport.UnauthorizedErrorCode}}}, false, ErrUnauthorized, nil},
		{"403 denied", &transport.Error{StatusCode: http.StatusForbidden,
			Errors: []transport.Diagnostic{{Code: transport.DeniedErrorCode, Message: "no push"}}}, false, ErrUnauthorized,
			[]string{"denied access: DENIED: no push"}},
		{"manifest unknown", &transport.Error{StatusCode: http.StatusNotFound,
			Errors: []transport.Diagnostic{{Code: transport.ManifestUnknownErrorCode, Message: "manifest unknown"}}}, false, ErrNotFound,
			[]string{"not found: reg:5000/a:b: MANIFEST_UNKNOWN: manifest unknown"}},
		{"name unknown", &transport.Error{StatusCode: http.StatusNotFound,
			Errors: []transport.Diagnostic{{Code: transport.NameUnknownErrorCode}}}, false, ErrNotFound, nil},
		{"bare 404", &transport.Error{StatusCode: http.StatusNotFound}, false, ErrNotFound, []string{"reg:5000/a:b"}},
		{"wrapped refused", fmt.Errorf("Get x: %w", refused), false, ErrUnreachable,
			[]string{"cannot connect to reg:5000: connection refused"}},
		{"dns", &net.DNSError{Err: "no such host", Name: "reg"}, false, ErrUnreachable, []string{"reg:5000"}},
		{"500 stays", &transport.Error{StatusCode: http.StatusInternalServerError}, false, nil, nil},
		{"other stays", other, false, nil, nil},
		{"canceled stays", fmt.Errorf("x: %w", context.Canceled), false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := classify(tc.err, "reg:5000", "reg:5000/a:b", tc.anonymous)
			if tc.kind == nil {
				if got != tc.err {
					t.Fatalf("classify changed an unclassified error: %v", got)
				}
				return
			}
			if !errors.Is(got, tc.kind) {
				t.Fatalf("classify(%v) = %v, want it to wrap %v", tc.err, got, tc.kind)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("classified error lost its cause")
			}
			for _, s := range tc.contains {
				if !strings.Contains(got.Error(), s) {
					t.Errorf("%q does not contain %q", got, s)
				}
			}
		})
	}
}

func TestClassifyShowsHubAsDockerIO(t *testing.T) {
	err := classify(&transport.Error{StatusCode: http.StatusUnauthorized}, "index.docker.io", "docker.io/library/x:1", true)
	if !strings.Contains(err.Error(), "registry docker.io ") {
		t.Errorf("error %q does not show docker.io", err)
	}
}
