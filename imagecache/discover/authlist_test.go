package discover

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAuthList(t *testing.T) {
	data := `# private registries
- registry: registry.example.com:5000
  username: builder
  password: s3cret
  images:
    - team/web:1.2
    - registry.example.com:5000/team/api:3
    - nginx
- registry: index.docker.io
  username: hubuser
  password: 0123
  images: [nginx:1.25, bitnami/redis:7, docker.io/library/busybox]
- registry: localhost:5000
  images:
    - tool:1
- registry: ghcr.io
  username: u
  password: p
- registry: registry.example.com:5000
  username: builder
  password: s3cret
  images:
    - team/extra:1
`
	got, err := ParseAuthList([]byte(data), "auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []AuthSection{
		{Registry: "registry.example.com:5000", Username: "builder", Password: "s3cret", Images: []string{
			"registry.example.com:5000/team/web:1.2",
			"registry.example.com:5000/team/api:3",
			"registry.example.com:5000/nginx:latest",
		}},
		{Registry: "docker.io", Username: "hubuser", Password: "0123", Images: []string{
			"docker.io/library/nginx:1.25",
			"docker.io/bitnami/redis:7",
			"docker.io/library/busybox:latest",
		}},
		{Registry: "localhost:5000", Images: []string{"localhost:5000/tool:1"}},
		{Registry: "ghcr.io", Username: "u", Password: "p"},
		{Registry: "registry.example.com:5000", Username: "builder", Password: "s3cret", Images: []string{
			"registry.example.com:5000/team/extra:1",
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseAuthList =\n%+v\nwant\n%+v", got, want)
	}
	parsed, err := parseAuthList([]byte(data), "auth.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if l := parsed[0].ImageLines; !reflect.DeepEqual(l, []int{6, 7, 8}) {
		t.Errorf("image lines of section 0 = %v, want [6 7 8]", l)
	}
	if l := parsed[1].ImageLines; !reflect.DeepEqual(l, []int{12, 12, 12}) {
		t.Errorf("image lines of section 1 = %v, want [12 12 12]", l)
	}
}

func TestParseAuthListEmpty(t *testing.T) {
	for _, data := range []string{"", "# none\n", "---\n", "[]\n", "~\n"} {
		got, err := ParseAuthList([]byte(data), "auth.yaml")
		if err != nil || len(got) != 0 {
			t.Errorf("ParseAuthList(%q) = %v, %v; want nothing", data, got, err)
		}
	}
}

func TestParseAuthListErrors(t *testing.T) {
	const sec = "- registry: r.example.com\n  username: u\n  password: p\n"
	for _, tc := range []struct {
		name, data string
		line       int
		field      string
		sentinel   error
	}{
		{"not a list", "registry: r.example.com\n", 1, "", ErrInvalid},
		{"section not a mapping", "- r.example.com\n", 1, "[0]", ErrInvalid},
		{"unknown field", sec + "  imgaes: [a]\n", 4, "[0]", ErrInvalid},
		{"duplicate field", sec + "  username: v\n", 4, "[0].username", ErrInvalid},
		{"missing registry", "- username: u\n  password: p\n  images: [a]\n", 1, "[0].registry", ErrInvalid},
		{"null registry", "- registry:\n  images: [a]\n", 1, "[0].registry", ErrInvalid},
		{"registry with scheme", "- registry: https://r.example.com\n", 1, "[0].registry", ErrInvalid},
		{"registry with path", "- registry: r.example.com/team\n", 1, "[0].registry", ErrInvalid},
		{"registry a list", "- registry: [a, b]\n", 1, "[0].registry", ErrInvalid},
		{"username without password", "- registry: r.example.com\n  username: u\n", 1, "[0].password", ErrInvalid},
		{"password without username", "- registry: r.example.com\n  password: p\n", 1, "[0].username", ErrInvalid},
		{"password a mapping", "- registry: r.example.com\n  username: u\n  password: {a: b}\n", 3, "[0].password", ErrInvalid},
		{"images a string", sec + "  images: web:1\n", 4, "[0].images", ErrInvalid},
		{"image a mapping", sec + "  images:\n    - web:1\n    - {name: api}\n", 6, "[0].images[1]", ErrInvalid},
		{"image empty", sec + "  images:\n    - \"\"\n", 5, "[0].images[0]", ErrInvalid},
		{"image not a reference", sec + "  images:\n    - Team/Web:1\n", 5, "[0].images[0]", ErrReference},
		{"image in another registry", sec + "  images:\n    - web:1\n    - quay.io/org/api:2\n", 6, "[0].images[1]", ErrInvalid},
		{"registry twice with other credentials", sec + sec[:len(sec)-2] + "q\n", 4, "[1].registry", ErrInvalid},
		{"second document", sec + "---\n" + sec, 5, "", ErrInvalid},
		// yaml.v3 locates this one a line early.
		{"syntax", sec + "  images: [a\n", 3, "", ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseAuthList([]byte(tc.data), "auth.yaml")
			if err == nil {
				t.Fatalf("ParseAuthList = %+v, want an error", got)
			}
			if got != nil {
				t.Errorf("sections returned with an error: %+v", got)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error does not wrap %v: %v", tc.sentinel, err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *Error: %v", err)
			}
			if e.File != "auth.yaml" || e.Line != tc.line || e.Field != tc.field {
				t.Errorf("error at %s:%d field %q, want auth.yaml:%d field %q: %v", e.File, e.Line, e.Field, tc.line, tc.field, err)
			}
			if !strings.HasPrefix(err.Error(), "auth.yaml:") {
				t.Errorf("message %q does not start with the file", err)
			}
		})
	}
}

// TestParseAuthListAllErrors: every bad section is reported at once.
func TestParseAuthListAllErrors(t *testing.T) {
	data := "- registry: a.example.com\n  images: [Bad]\n- registry: b.example.com\n  images: [Worse]\n"
	_, err := ParseAuthList([]byte(data), "auth.yaml")
	if err == nil || !strings.Contains(err.Error(), "auth.yaml:2: [0].images[0]: ") || !strings.Contains(err.Error(), "auth.yaml:4: [1].images[0]: ") {
		t.Fatalf("error = %v, want both bad images named", err)
	}
}
