package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/drove-project/drove/layers/store"
)

var writeSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzLoad from freshly built archives")

// fuzzSeeds are small archives of each kind Load meets, good and bad.
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	s := newStore(t)
	shared := randomLayer(t, 48)
	putImage(t, s, "app:v1", ociImage(t, "amd64", shared, randomLayer(t, 32)))
	putImage(t, s, "tools:2", ociImage(t, "arm64", shared))
	oci := save(t, s, SaveOptions{}, "app:v1", "tools:2")
	docker := save(t, s, SaveOptions{Format: DockerArchive}, "app:v1")
	gz := compressors[0].compress(t, oci)

	entries := readTar(t, oci)
	flipped := bytes.Clone(oci)
	off, size := entryOffset(t, oci, entries[len(entries)-2].hdr.Name)
	flipped[off+size/2] ^= 1
	var missing []tarEntry
	for _, e := range entries {
		if e.hdr.Name != entries[4].hdr.Name {
			missing = append(missing, e)
		}
	}
	evil := []tarEntry{{&tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}, []byte("x")}}
	return map[string][]byte{
		"oci":            oci,
		"oci-gzip":       gz,
		"oci-gzip-cut":   gz[:len(gz)-10],
		"oci-zstd":       compressors[1].compress(t, oci),
		"oci-truncated":  oci[:len(oci)/2],
		"oci-flipped":    flipped,
		"oci-no-blob":    writeTar(t, missing),
		"docker":         docker,
		"docker-cut":     docker[:len(docker)-blockSize],
		"traversal":      writeTar(t, evil),
		"garbage":        []byte("definitely not an archive"),
		"empty-tar":      make([]byte, 2*blockSize),
		"index-only-tar": writeTar(t, []tarEntry{entries[len(entries)-1]}),
	}
}

// TestWriteFuzzSeeds regenerates the committed corpus when run with
// -write-fuzz-seeds, and otherwise checks that it is there and small.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
	if *writeSeeds {
		for name, b := range fuzzSeeds(t) {
			if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) < 5 {
		t.Fatalf("%s holds %d seeds; run go test -run TestWriteFuzzSeeds -write-fuzz-seeds", dir, len(ents))
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 50<<10 {
			t.Errorf("seed %s is %d bytes; keep seeds under 50 KiB", e.Name(), len(b))
		}
		if !bytes.HasPrefix(b, []byte("go test fuzz v1\n[]byte(")) {
			t.Errorf("seed %s is not in the go test fuzz v1 format", e.Name())
		}
	}
}

// FuzzLoad feeds arbitrary bytes to Load, streamed and as a file. It must
// not panic; when it fails, the store must be exactly as before and the
// error one of the package's sentinels; when it succeeds, every image it
// reports must be whole.
//
// Blob commits fsync, so the fuzzer runs several times faster with
// TMPDIR=/dev/shm.
func FuzzLoad(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("not an archive"))
	f.Add(make([]byte, 2*blockSize))
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	// One empty store per process, emptied again after a successful load:
	// opening a store per input costs more than the load.
	s, err := store.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	input := filepath.Join(f.TempDir(), "in.tar")
	f.Fuzz(func(t *testing.T, data []byte) {
		empty := snapshot(t, s)
		if len(empty.names) != 0 || len(empty.blobs) != 0 || len(empty.tmp) != 0 {
			t.Fatalf("the store is not empty before the load: %+v", empty)
		}
		if err := os.WriteFile(input, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, how := range []string{"stream", "file"} {
			var got []store.Entry
			var err error
			if how == "stream" {
				got, err = Load(context.Background(), bytes.NewReader(data), s, LoadOptions{})
			} else {
				got, err = LoadFile(context.Background(), input, s, LoadOptions{})
			}
			if err != nil {
				if got != nil {
					t.Fatalf("%s: entries %v with error %v", how, got, err)
				}
				if !isClassified(err) {
					t.Errorf("%s: error matches no sentinel: %v", how, err)
				}
				assertUnchanged(t, s, empty)
				continue
			}
			for _, e := range got {
				if err := s.Verify(e.Descriptor); err != nil {
					t.Fatalf("%s: loaded %s is not whole: %v", how, e.Name, err)
				}
				if e.Name == "" {
					continue
				}
				if r, err := s.Resolve(e.Name); err != nil || r.Descriptor.Digest != e.Descriptor.Digest {
					t.Fatalf("%s: loaded %s does not resolve: %v", how, e.Name, err)
				}
			}
			if tmp := dirNames(t, filepath.Join(s.Root(), "tmp")); len(tmp) != 0 {
				t.Fatalf("%s: temporary files left: %v", how, tmp)
			}
			emptyStore(t, s)
		}
	})
}

// emptyStore removes every name and blob.
func emptyStore(t *testing.T, s *store.Store) {
	t.Helper()
	names, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range names {
		if err := s.Untag(e.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Prune(nil); err != nil {
		t.Fatal(err)
	}
}
