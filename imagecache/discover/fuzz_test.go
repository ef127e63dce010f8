package discover

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/drove-project/drove/layers/reference"
)

// Seeds are in testdata/fuzz/<FuzzName>/.

func FuzzParseImageList(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseImageList(data, "list.txt")
		lines := bytes.Count(data, []byte("\n")) + 1
		if err != nil {
			if !errors.Is(err, ErrReference) {
				t.Fatalf("error without ErrReference: %v", err)
			}
			checkFuzzError(t, err, "list.txt", lines)
			return
		}
		prev := 0
		for _, e := range entries {
			if e.Line <= prev || e.Line > lines {
				t.Fatalf("entry %+v: line out of order or range (previous %d, %d lines)", e, prev, lines)
			}
			prev = e.Line
			checkNormalized(t, e.Ref)
		}
	})
}

func FuzzParseAuthList(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, err := parseAuthList(data, "auth.yaml")
		lines := yamlLines(data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrReference) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			checkFuzzError(t, err, "auth.yaml", lines)
			return
		}
		for _, s := range secs {
			if s.Registry == "" || strings.Contains(s.Registry, "/") {
				t.Fatalf("section %+v: bad registry", s)
			}
			if (s.Username == "") != (s.Password == "") {
				t.Fatalf("section %+v: username without password or the reverse", s)
			}
			if len(s.ImageLines) != len(s.Images) {
				t.Fatalf("section %+v: %d lines for %d images", s, len(s.ImageLines), len(s.Images))
			}
			for _, im := range s.Images {
				checkNormalized(t, im)
				if !strings.HasPrefix(im, s.Registry+"/") {
					t.Fatalf("image %s outside its section's registry %s", im, s.Registry)
				}
			}
		}
	})
}

func FuzzManifestImages(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		found, err := ManifestImages(data, "app.yaml")
		lines := yamlLines(data)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error without ErrSyntax: %v", err)
			}
			checkFuzzError(t, err, "app.yaml", lines)
			return
		}
		for _, fd := range found {
			if strings.TrimSpace(fd.Ref) == "" || fd.Line < 1 || fd.Line > lines {
				t.Fatalf("found %+v in %d lines", fd, lines)
			}
		}
	})
}

// checkFuzzError checks that every error in err is an *Error naming file
// and a line within the input.
func checkFuzzError(t *testing.T, err error, file string, lines int) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		var fe *Error
		if !errors.As(e, &fe) {
			if strings.HasSuffix(e.Error(), "more errors not shown") {
				continue
			}
			t.Fatalf("not an *Error: %v", e)
		}
		if fe.File != file || fe.Line < 0 || fe.Line > lines+1 {
			t.Fatalf("error at %s:%d in %d lines: %v", fe.File, fe.Line, lines, fe)
		}
	}
}

// checkNormalized fails unless ref is a reference in normal form.
func checkNormalized(t *testing.T, ref string) {
	t.Helper()
	again, err := reference.Normalize(ref)
	if err != nil || again != ref {
		t.Fatalf("%q is not normalized: Normalize = %q, %v", ref, again, err)
	}
}

// yamlLines counts lines as YAML does: \n, \r\n and a lone \r each end one.
func yamlLines(data []byte) int {
	unix := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	return bytes.Count(unix, []byte("\n")) + bytes.Count(unix, []byte("\r")) + 1
}
