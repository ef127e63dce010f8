package sshpush

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUpload(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	ctx := context.Background()
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	dst := filepath.Join(t.TempDir(), "new", "dir", "blob")

	if err := c.Upload(ctx, bytes.NewReader(data), int64(len(data)), dst, 0o640); err != nil {
		t.Fatalf("upload: %v", err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded %d bytes (%v), want %d identical", len(got), err, len(data))
	}
	if st, _ := os.Stat(dst); st.Mode().Perm() != 0o640 {
		t.Fatalf("mode = %v, want 0640", st.Mode().Perm())
	}
	sum, err := c.RemoteSHA256(ctx, dst)
	if err != nil || sum != sha256Hex(data) {
		t.Fatalf("RemoteSHA256 = %q, %v; want %s", sum, err, sha256Hex(data))
	}
	if sum, err := c.RemoteSHA256(ctx, dst+".absent"); err != nil || sum != "" {
		t.Fatalf("RemoteSHA256 of a missing file = %q, %v", sum, err)
	}
	assertNoTemp(t, filepath.Dir(dst))

	// Overwrite, with a smaller file.
	if err := c.Upload(ctx, strings.NewReader("v2"), 2, dst, 0o600); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "v2" {
		t.Fatalf("after overwrite: %q", got)
	}
	if err := c.Upload(ctx, strings.NewReader(""), 0, filepath.Join(filepath.Dir(dst), "empty"), 0o600); err != nil {
		t.Fatalf("empty file: %v", err)
	}
}

func TestUploadInterruptedLeavesOldFile(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "target")
	writeFile(t, dst, []byte("old"), 0o644)
	size := int64(1 << 20)
	readErr := errors.New("disk on fire")

	tests := []struct {
		name    string
		r       func() io.Reader
		ctx     func() (context.Context, context.CancelFunc)
		wantErr func(error) bool
	}{
		{
			name:    "reader fails",
			r:       func() io.Reader { return io.MultiReader(bytes.NewReader(make([]byte, 100<<10)), errReader{readErr}) },
			wantErr: func(err error) bool { return errors.Is(err, readErr) },
		},
		{
			name: "reader short",
			r:    func() io.Reader { return bytes.NewReader(make([]byte, 100)) },
			wantErr: func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "100 of 1048576")
			},
		},
		{
			name: "context cancelled mid-stream",
			r:    nil, // set below: blocks after some bytes until cancelled
			wantErr: func(err error) bool {
				return errors.Is(err, context.Canceled)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var r io.Reader
			if tt.r != nil {
				r = tt.r()
			} else {
				r = io.MultiReader(bytes.NewReader(make([]byte, 64<<10)), &cancelReader{ctx: ctx, cancel: cancel})
			}
			err := c.Upload(ctx, r, size, dst, 0o644)
			if !tt.wantErr(err) {
				t.Fatalf("err = %v", err)
			}
			if got, _ := os.ReadFile(dst); string(got) != "old" {
				t.Fatalf("target = %q after a failed upload, want old content", got)
			}
			// The remote script removes its temporary file as it exits;
			// after a cancel that may be just after Upload returned.
			waitFor(t, 10*time.Second, "temporary file removed", func() bool { return len(temps(t, dir)) == 0 })
		})
	}
}

func TestUploadChecksumMismatch(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	dir := t.TempDir()
	dst := filepath.Join(dir, "target")
	writeFile(t, dst, []byte("old"), 0o644)
	// Simulate corruption in transit: the remote side hashes to zeros.
	c.sumCmd = `drove_sum() { echo 0000000000000000000000000000000000000000000000000000000000000000; }`
	err := c.Upload(context.Background(), strings.NewReader("new content"), 11, dst, 0o644)
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("err = %v, want ErrChecksumMismatch", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "old" {
		t.Fatalf("target = %q after a corrupt upload", got)
	}
	assertNoTemp(t, dir)
}

func TestUploadRejectsBadPath(t *testing.T) {
	c := &Client{target: Target{Host: "h"}}
	for _, p := range []string{"", "relative/x", "/a/../b", "/", "/a/"} {
		if err := c.Upload(context.Background(), strings.NewReader(""), 0, p, 0o644); err == nil || !strings.Contains(err.Error(), "absolute") {
			t.Errorf("Upload(%q) err = %v", p, err)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cancelReader cancels the context on its first read, then blocks until
// the context ends.
type cancelReader struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (r *cancelReader) Read([]byte) (int, error) {
	r.cancel()
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func temps(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.drove-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	if m := temps(t, dir); len(m) > 0 {
		t.Fatalf("temporary files left: %v", m)
	}
}
