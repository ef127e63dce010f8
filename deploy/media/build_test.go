package media

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// readTree reads every file of built media through the same readers
// Verify uses, by path.
func readTree(t *testing.T, p string, f Format) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	if f == Tar {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		tr := tar.NewReader(fh)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				return files
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				b, _ := io.ReadAll(tr)
				files[h.Name] = b
			}
		}
	}
	var fsys fs.FS
	var closeFn func() error
	var err error
	if f == ISO {
		st, _ := os.Stat(p)
		fsys, closeFn, err = openISO(p, st.Size())
	} else {
		fsys, closeFn, err = openRaw(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	err = fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files[name], err = readAllSized(fsys, name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func readAllSized(fsys fs.FS, name string) ([]byte, error) {
	f, size, err := openSized(fsys, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, size))
}

// TestBuildEveryFormat: each format holds the whole tree (the image with
// every platform's blobs, the binary, config, token, install.sh, the
// cloud-init seed), is detected by content and verifies.
func TestBuildEveryFormat(t *testing.T) {
	s, idx := newTestStore(t)
	storeBlobs, err := os.ReadDir(filepath.Dir(s.BlobPath(idx.Digest)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{Tar, ISO, Raw} {
		t.Run(string(f), func(t *testing.T) {
			spec := testSpec(t, s, f)
			out := build(t, spec)
			if got, err := Detect(out); err != nil || got != f {
				t.Fatalf("Detect = %q, %v; want %q", got, err, f)
			}
			r, err := Verify(context.Background(), out)
			if err != nil || !r.OK() {
				t.Fatalf("Verify: %+v, %v", r, err)
			}
			files := readTree(t, out, f)
			// 1 binary, oci-layout, index.json, 7 blobs, 5 more files.
			if r.Checked != 15 || len(files) != 16 || len(r.Unlisted) != 0 {
				t.Errorf("checked %d, %d files on the media, unlisted %v; want 15, 16, none", r.Checked, len(files), r.Unlisted)
			}
			var blobs []string
			for name := range files {
				if strings.HasPrefix(name, ImageDir+"/blobs/sha256/") {
					blobs = append(blobs, path.Base(name))
				}
			}
			slices.Sort(blobs)
			var want []string
			for _, e := range storeBlobs {
				want = append(want, e.Name())
			}
			if !slices.Equal(blobs, want) {
				t.Errorf("image blobs on the media %v, want every blob of the index %v", blobs, want)
			}
			if !bytes.Contains(files[ImageDir+"/index.json"], []byte(idx.Digest.String())) {
				t.Errorf("index.json does not name the image %s:\n%s", idx.Digest, files[ImageDir+"/index.json"])
			}
			if !bytes.Equal(files[InstallSh], installScript) || !bytes.Equal(files[AgentConfig], spec.AgentConfig) ||
				!bytes.Equal(files[TokenFile], spec.Token) {
				t.Error("install.sh, agent.yaml or token differ from what was given")
			}
			if !bytes.Contains(files[UserData], []byte("LABEL=DROVE")) || !bytes.HasPrefix(files[MetaData], []byte("instance-id: drove-")) {
				t.Errorf("cloud-init seed:\n%s\n%s", files[UserData], files[MetaData])
			}
		})
	}
}

// TestVerifyNamesTamperedFile: one byte changed inside a file of the
// image fails Verify, which names exactly that file.
func TestVerifyNamesTamperedFile(t *testing.T) {
	s, _ := newTestStore(t)
	for _, f := range []Format{Tar, ISO, Raw} {
		t.Run(string(f), func(t *testing.T) {
			out := build(t, testSpec(t, s, f))
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			// The image's name is only in index.json.
			i := bytes.Index(b, []byte("library/media-test:1"))
			if i < 0 {
				t.Fatal("index.json's content not found in the image")
			}
			b[i] ^= 0x20
			if err := os.WriteFile(out, b, 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Verify(context.Background(), out)
			if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), ImageDir+"/index.json") {
				t.Fatalf("Verify of tampered media: %v", err)
			}
			if !slices.Equal(r.Mismatched, []string{ImageDir + "/index.json"}) || len(r.Missing) != 0 {
				t.Fatalf("report: %+v", r)
			}
		})
	}
}

// TestVerifyNamesMissingFile: a file dropped from the media is named
// missing; an added one is listed but passes.
func TestVerifyNamesMissingFile(t *testing.T) {
	s, _ := newTestStore(t)
	out := build(t, testSpec(t, s, Tar))
	in, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	edited := filepath.Join(t.TempDir(), "edited.tar")
	o, err := os.Create(edited)
	if err != nil {
		t.Fatal(err)
	}
	tr, tw := tar.NewReader(in), tar.NewWriter(o)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == TokenFile {
			continue
		}
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.WriteHeader(&tar.Header{Name: "extra.txt", Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
	tw.Write([]byte("x\n"))
	tw.Close()
	o.Close()
	r, err := Verify(context.Background(), edited)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "missing: "+TokenFile) {
		t.Fatalf("Verify: %v", err)
	}
	if !slices.Equal(r.Missing, []string{TokenFile}) || !slices.Equal(r.Unlisted, []string{"extra.txt"}) || len(r.Mismatched) != 0 {
		t.Fatalf("report: %+v", r)
	}
}

// TestBuildLeavesNothingOnFailure: a failed or cancelled build leaves no
// output and no staging directory.
func TestBuildLeavesNothingOnFailure(t *testing.T) {
	s, _ := newTestStore(t)
	for name, mutate := range map[string]func(*Spec) context.Context{
		"missing binary": func(sp *Spec) context.Context {
			for a := range sp.Binaries {
				sp.Binaries[a] = "/nonexistent/drove"
			}
			return context.Background()
		},
		"cancelled": func(*Spec) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		},
	} {
		t.Run(name, func(t *testing.T) {
			spec := testSpec(t, s, ISO)
			ctx := mutate(&spec)
			dir := t.TempDir()
			if _, err := Build(ctx, spec, filepath.Join(dir, "m.iso")); err == nil {
				t.Fatal("Build succeeded")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Fatalf("left behind: %v", ents)
			}
		})
	}
}

// TestBuildRefuses: bad specs are refused with what to fix.
func TestBuildRefuses(t *testing.T) {
	s, _ := newTestStore(t)
	for name, tc := range map[string]struct {
		edit func(*Spec)
		want string
	}{
		"unknown image": {func(sp *Spec) { sp.Image = "nope:1" }, "nope:1"},
		"label":         {func(sp *Spec) { sp.Label = "drove" }, "volume label"},
		"arch":          {func(sp *Spec) { sp.Binaries["x86/64"] = "x" }, "architecture"},
		"format":        {func(sp *Spec) { sp.Format = "zip" }, "zip"},
		"token":         {func(sp *Spec) { sp.Token = nil }, "token"},
	} {
		t.Run(name, func(t *testing.T) {
			spec := testSpec(t, s, Tar)
			tc.edit(&spec)
			_, err := Build(context.Background(), spec, filepath.Join(t.TempDir(), "m"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestDetectUnknown(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(p, bytes.Repeat([]byte("junk"), 10000), 0o644)
	if _, err := Detect(p); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("Detect(junk) = %v", err)
	}
	if _, err := Verify(context.Background(), p); !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("Verify(junk) = %v", err)
	}
}
