package discover

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseImageList(t *testing.T) {
	data := "\xEF\xBB\xBF# images the cluster needs\n" +
		"nginx:1.25\n" +
		"\n" +
		"   registry.k8s.io/pause:3.9   \r\n" +
		"\t# indented comment\n" +
		"bitnami/redis:7 # trailing comment\n" +
		"quay.io/org/app@sha256:" + strings.Repeat("ab", 32) + "\n" +
		"index.docker.io/library/busybox\n" +
		"nginx:1.25\n" +
		"localhost:5000/team/tool" // no final newline
	got, err := ParseImageList([]byte(data), "list.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []ListEntry{
		{"docker.io/library/nginx:1.25", 2},
		{"registry.k8s.io/pause:3.9", 4},
		{"docker.io/bitnami/redis:7", 6},
		{"quay.io/org/app@sha256:" + strings.Repeat("ab", 32), 7},
		{"docker.io/library/busybox:latest", 8},
		{"docker.io/library/nginx:1.25", 9},
		{"localhost:5000/team/tool:latest", 10},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseImageList =\n%v\nwant\n%v", got, want)
	}
}

func TestParseImageListEmpty(t *testing.T) {
	for _, data := range []string{"", "\n\n", "# only comments\n  # more\n"} {
		got, err := ParseImageList([]byte(data), "list.txt")
		if err != nil || len(got) != 0 {
			t.Errorf("ParseImageList(%q) = %v, %v; want nothing", data, got, err)
		}
	}
}

func TestParseImageListErrors(t *testing.T) {
	data := "nginx:1.25\nNot/Lower:1\nbusybox\nnginx two\n:nope\n"
	got, err := ParseImageList([]byte(data), "lists/images.txt")
	if err == nil {
		t.Fatalf("ParseImageList = %v, want an error", got)
	}
	if got != nil {
		t.Errorf("entries returned with an error: %v", got)
	}
	if !errors.Is(err, ErrReference) {
		t.Errorf("error does not wrap ErrReference: %v", err)
	}
	for _, want := range []string{"lists/images.txt:2: ", "lists/images.txt:4: ", "lists/images.txt:5: ", `"Not/Lower:1"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "images.txt:1:") || strings.Contains(err.Error(), "images.txt:3:") {
		t.Errorf("error names a good line: %v", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.File != "lists/images.txt" || e.Line != 2 {
		t.Errorf("first *Error = %+v, want lists/images.txt line 2", e)
	}
}

func TestParseImageListManyErrors(t *testing.T) {
	data := strings.Repeat("BAD\n", 30)
	_, err := ParseImageList([]byte(data), "l")
	if err == nil || !strings.Contains(err.Error(), "l:20: ") || strings.Contains(err.Error(), "l:21: ") ||
		!strings.Contains(err.Error(), "10 more errors not shown") {
		t.Fatalf("error = %v, want 20 errors shown and 10 counted", err)
	}
}
