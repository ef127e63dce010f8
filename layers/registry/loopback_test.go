package registry

import "testing"

func TestIsLoopbackHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:5000", true},
		{"127.0.0.2:5000", true},
		{"127.255.255.254", true},
		{"[::1]:5000", true},
		{"::1", true},
		{"localhost", true},
		{"localhost:5000", true},
		{"LOCALHOST:5000", true},
		{"reg.localhost:80", true},
		{"128.0.0.1:5000", false},
		{"10.0.0.1:5000", false},
		{"localhost.example.com", false},
		{"docker.io", false},
		{"[::2]:5000", false},
	} {
		if got := isLoopbackHost(tc.host); got != tc.want {
			t.Errorf("isLoopbackHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestParseRemoteSchemes(t *testing.T) {
	for _, tc := range []struct {
		ref      string
		insecure bool
		want     string
	}{
		{"127.0.0.1:5000/a", false, "http"},
		{"127.0.0.2:5000/a", false, "http"},
		{"[::1]:5000/a", false, "http"},
		{"localhost/a", false, "http"},
		{"ghcr.io/a", false, "https"},
		{"ghcr.io/a", true, "http"}, // http is tried after https
		{"foo", false, "https"},
	} {
		r, err := Options{Insecure: tc.insecure}.parseRemote(tc.ref)
		if err != nil {
			t.Fatalf("parseRemote(%q): %v", tc.ref, err)
		}
		if got := r.Context().Scheme(); got != tc.want {
			t.Errorf("scheme of %q (insecure=%v) = %s, want %s", tc.ref, tc.insecure, got, tc.want)
		}
	}
}
