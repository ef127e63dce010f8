package media

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/layers/store"
)

// testImage is the name the test store holds a two-platform image under.
const testImage = "media-test:1"

// newTestStore makes a store holding testImage: an OCI index with an
// amd64 and an arm64 image of one random layer each.
func newTestStore(t *testing.T) (*store.Store, v1.Descriptor) {
	t.Helper()
	s, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := testimage.Index(t, testimage.Spec{Layers: 1, LayerSize: 4096}, "amd64", "arm64")
	d, err := s.WriteIndex(context.Background(), idx, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(testImage, d); err != nil {
		t.Fatal(err)
	}
	return s, d
}

// fakeBinary writes a small executable standing in for drove: it records
// its arguments in $DROVE_ARGS_FILE.
func fakeBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "drove")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$DROVE_ARGS_FILE\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// testSpec is a spec for the test store with the fake binary for this
// machine's architecture.
func testSpec(t *testing.T, s *store.Store, f Format) Spec {
	t.Helper()
	return Spec{
		Store: s, Image: testImage, Format: f,
		Binaries:    map[string]string{runtime.GOARCH: fakeBinary(t)},
		AgentConfig: []byte("join:\n- 10.99.88.77\nroles:\n- node\n"),
		Token:       []byte("drove-testtokentesttokentesttoken\n"),
	}
}

// build writes media of format f into a new directory.
func build(t *testing.T, spec Spec) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "media."+string(spec.Format))
	if _, err := Build(context.Background(), spec, out); err != nil {
		t.Fatalf("build %s: %v", spec.Format, err)
	}
	return out
}
