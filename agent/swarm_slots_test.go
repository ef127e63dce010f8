package agent

import (
	"testing"
	"time"
)

func TestSlotGate(t *testing.T) {
	g := newSlotGate(2)
	now := time.Unix(100, 0)
	a, b, c := pieceRef{"x", 0}, pieceRef{"x", 1}, pieceRef{"x", 2}
	if !g.admit("r1", a, 2, now) || !g.admit("r2", b, 1, now) {
		t.Fatal("free slots refused")
	}
	if g.admit("r3", c, 4, now) {
		t.Fatal("a third piece admitted with two slots")
	}
	if !g.admit("r1", a, 2, now) {
		t.Fatal("the next unit of a piece holding a slot was refused")
	}
	g.sent("r2", b, true, now) // b's only unit: its slot is free
	if !g.admit("r3", c, 4, now) {
		t.Fatal("a freed slot was not given out")
	}
	g.sent("r1", a, true, now)
	if g.busy() != 2 {
		t.Fatalf("a piece with a unit left gave up its slot: %d busy", g.busy())
	}
	g.sent("r1", a, false, now) // a failed unit frees the slot
	if g.busy() != 1 {
		t.Fatalf("%d busy after a failed unit", g.busy())
	}
	// A requester that stops asking loses its slot after slotIdle.
	if !g.admit("r4", a, 4, now) || g.admit("r5", b, 1, now.Add(time.Second)) {
		t.Fatal("slot accounting")
	}
	if !g.admit("r5", b, 1, now.Add(slotIdle+time.Second)) {
		t.Fatal("idle slots were not freed")
	}
}
