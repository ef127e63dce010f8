package progress

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, false)
	tr := r.Track("load x.tar")
	tr.Set(512, 1024)
	tr.Set(1024, 1024)
	tr.Done(nil)
	r.Wait()
	if out := buf.String(); !strings.HasPrefix(out, "load x.tar: done, 1.0 KiB in ") || strings.Count(out, "\n") != 1 {
		t.Fatalf("output %q", out)
	}
	buf.Reset()
	tr = r.Track("push")
	tr.Set(10, -1)
	tr.Done(errors.New("x"))
	if !strings.Contains(buf.String(), "push: failed after 10 B") {
		t.Fatalf("output %q", buf.String())
	}
}

func TestQuiet(t *testing.T) {
	var buf bytes.Buffer
	r := New(&buf, true)
	tr := r.Track("x")
	tr.Set(1, 2)
	tr.Done(nil)
	r.Wait()
	if buf.Len() != 0 {
		t.Fatalf("quiet printed %q", buf.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 << 30: "5.0 GiB"} {
		if got := HumanBytes(n); got != want {
			t.Errorf("HumanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
