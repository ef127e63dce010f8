package swarm

import (
	"bytes"
	"errors"
	"testing"
)

func TestBitfieldFrom(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		n     int
		ok    bool
		count int
	}{
		{"zero bits", []byte{}, 0, true, 0},
		{"zero bits nil", nil, 0, true, 0},
		{"zero bits one byte", []byte{0}, 0, false, 0},
		{"eight full", []byte{0xff}, 8, true, 8},
		{"nine, last set", []byte{0x00, 0x80}, 9, true, 1},
		{"nine, spare bit set", []byte{0xff, 0x40}, 9, false, 0},
		{"nine, one byte", []byte{0xff}, 9, false, 0},
		{"nine, three bytes", []byte{0xff, 0x80, 0}, 9, false, 0},
		{"three, spare set", []byte{0x10}, 3, false, 0},
		{"three, all set", []byte{0xe0}, 3, true, 3},
		{"negative", nil, -1, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bf, err := BitfieldFrom(tc.b, tc.n)
			if !tc.ok {
				if !errors.Is(err, ErrBadBitfield) {
					t.Fatalf("error %v, want ErrBadBitfield", err)
				}
				return
			}
			must(t, err)
			if bf.Len() != tc.n || bf.Count() != tc.count || !bytes.Equal(bf.Bytes(), append([]byte{}, tc.b...)) {
				t.Fatalf("len %d count %d bytes %x", bf.Len(), bf.Count(), bf.Bytes())
			}
		})
	}
}

func TestBitfieldBitOrder(t *testing.T) {
	for _, tc := range []struct {
		n, i int
		want []byte
	}{
		{1, 0, []byte{0x80}},
		{8, 7, []byte{0x01}},
		{9, 8, []byte{0x00, 0x80}},
		{16, 9, []byte{0x00, 0x40}},
		{20, 19, []byte{0x00, 0x00, 0x10}},
	} {
		b := NewBitfield(tc.n)
		b.Set(tc.i)
		if !bytes.Equal(b.Bytes(), tc.want) {
			t.Errorf("n=%d set %d: bytes %x, want %x", tc.n, tc.i, b.Bytes(), tc.want)
		}
		for j := range tc.n {
			if b.Has(j) != (j == tc.i) {
				t.Errorf("n=%d set %d: Has(%d) = %v", tc.n, tc.i, j, b.Has(j))
			}
		}
	}
}

func TestBitfieldOps(t *testing.T) {
	b := NewBitfield(10)
	if b.Full() || b.Count() != 0 {
		t.Fatal("new bitfield not empty")
	}
	b.Set(-1)
	b.Set(10) // out of range: ignored
	if b.Count() != 0 || b.Has(-1) || b.Has(10) {
		t.Fatal("out-of-range Set changed the bitfield")
	}
	for i := range 10 {
		b.Set(i)
	}
	if !b.Full() || b.Count() != 10 {
		t.Fatalf("full bitfield: count %d", b.Count())
	}
	out := b.Bytes()
	out[0] = 0
	if !b.Has(0) {
		t.Fatal("Bytes shares memory with the bitfield")
	}
	c := b.Clone()
	c.Clear(3)
	if !b.Has(3) || c.Has(3) || c.Count() != 9 {
		t.Fatal("Clone shares memory, or Clear failed")
	}
	if !NewBitfield(0).Full() {
		t.Fatal("a zero-bit bitfield is full")
	}
}

func TestFullBitfield(t *testing.T) {
	for n := range 18 {
		f := FullBitfield(n)
		if f.Count() != n || !f.Full() {
			t.Fatalf("FullBitfield(%d): count %d", n, f.Count())
		}
		if _, err := BitfieldFrom(f.Bytes(), n); err != nil {
			t.Fatalf("FullBitfield(%d) has spare bits set: %v", n, err)
		}
	}
}
