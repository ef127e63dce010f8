package store

import (
	"path/filepath"
	"testing"
)

func TestCreateTempIsInsideTheStore(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.CreateTemp("spool-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got, want := filepath.Dir(f.Name()), filepath.Join(s.Root(), "tmp"); got != want {
		t.Fatalf("temporary file in %s, want %s", got, want)
	}
	if _, err := f.WriteString("x"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("a temporary file became a name: %v", l)
	}
}
