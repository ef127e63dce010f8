package archive

import (
	"bytes"
	"compress/gzip"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var compressors = []struct {
	name     string
	kind     compression
	compress func(t testing.TB, b []byte) []byte
}{
	{"gzip", compressGzip, func(t testing.TB, b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}},
	{"zstd", compressZstd, func(t testing.TB, b []byte) []byte {
		zw, err := zstd.NewWriter(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer zw.Close()
		return zw.EncodeAll(b, nil)
	}},
	{"bzip2", compressBzip2, func(t testing.TB, b []byte) []byte {
		if _, err := exec.LookPath("bzip2"); err != nil {
			t.Skip("bzip2 not installed")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}},
}

func TestSniff(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want compression
	}{
		{[]byte{0x1f, 0x8b, 8, 0}, compressGzip},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, compressZstd},
		{[]byte("BZh91AY"), compressBzip2},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, compressXz},
		{[]byte("oci-layout\x00\x00"), compressNone},
		{[]byte{0x1f}, compressNone},
		{nil, compressNone},
	} {
		if got := sniff(tc.head); got != tc.want {
			t.Errorf("sniff(%q) = %v, want %v", tc.head, got, tc.want)
		}
	}
}
