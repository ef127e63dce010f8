package swarm

import (
	"fmt"
	"math/bits"
)

// Bitfield holds one bit per piece of a blob, set when the piece is
// verified: bit i is in byte i/8 under mask 0x80>>(i%8), as
// protocol.Bitfields carries it. A Bitfield is a small value whose copies
// share their bits: use Clone for an independent one. It is not safe for
// concurrent use.
type Bitfield struct {
	n int
	b []byte
}

// NewBitfield returns a Bitfield of n bits, all clear.
func NewBitfield(n int) Bitfield {
	n = max(n, 0)
	return Bitfield{n: n, b: make([]byte, (n+7)/8)}
}

// BitfieldFrom checks and copies the wire form of an n-bit Bitfield: b must
// have exactly ceil(n/8) bytes and its bits past n must be clear, else the
// error wraps ErrBadBitfield.
func BitfieldFrom(b []byte, n int) (Bitfield, error) {
	if n < 0 {
		return Bitfield{}, fmt.Errorf("bitfield of %d bits: %w", n, ErrBadBitfield)
	}
	if want := (n + 7) / 8; len(b) != want {
		return Bitfield{}, fmt.Errorf("bitfield of %d bits has %d bytes, want %d: %w", n, len(b), want, ErrBadBitfield)
	}
	if spare := n % 8; spare != 0 && b[len(b)-1]&(0xff>>spare) != 0 {
		return Bitfield{}, fmt.Errorf("bitfield of %d bits has bits set past its end: %w", n, ErrBadBitfield)
	}
	return Bitfield{n: n, b: append([]byte(nil), b...)}, nil
}

// Len is the number of bits.
func (b Bitfield) Len() int { return b.n }

// Has reports whether bit i is set; false when i is out of range.
func (b Bitfield) Has(i int) bool {
	return i >= 0 && i < b.n && b.b[i/8]&(0x80>>(i%8)) != 0
}

// Set sets bit i. An i out of range changes nothing.
func (b Bitfield) Set(i int) {
	if i >= 0 && i < b.n {
		b.b[i/8] |= 0x80 >> (i % 8)
	}
}

// Clear clears bit i. An i out of range changes nothing.
func (b Bitfield) Clear(i int) {
	if i >= 0 && i < b.n {
		b.b[i/8] &^= 0x80 >> (i % 8)
	}
}

// Count is the number of bits set.
func (b Bitfield) Count() int {
	c := 0
	for _, x := range b.b {
		c += bits.OnesCount8(x)
	}
	return c
}

// Full reports whether every bit is set (true for zero bits).
func (b Bitfield) Full() bool { return b.Count() == b.n }

// Bytes returns a copy of the wire form.
func (b Bitfield) Bytes() []byte { return append([]byte{}, b.b...) }

// Clone returns a Bitfield with the same bits that shares nothing with b.
func (b Bitfield) Clone() Bitfield { return Bitfield{n: b.n, b: append([]byte{}, b.b...)} }

// FullBitfield returns a Bitfield of n bits, all set: what a peer holding a
// whole blob advertises.
func FullBitfield(n int) Bitfield {
	b := NewBitfield(n)
	for i := range b.b {
		b.b[i] = 0xff
	}
	if spare := b.n % 8; spare != 0 {
		b.b[len(b.b)-1] = 0xff << (8 - spare)
	}
	return b
}
