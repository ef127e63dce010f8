package agent

import (
	"testing"
	"time"
)

func TestSlotGate(t *testing.T) {
	g := newSlotGate(2)
	now := time.Unix(100, 0)
	a, b, c := pieceRef{"x", 0}, pieceRef{"x", 1}, pieceRef{"x", 2}
	if !g.admit("r1", a, now) || !g.admit("r2", b, now) {
		t.Fatal("free slots refused")
	}
	if g.admit("r3", c, now) {
		t.Fatal("a third piece admitted with two slots")
	}
	if !g.admit("r1", a, now) {
		t.Fatal("the next unit of a piece holding a slot was refused")
	}
	// Sent is not done: the bytes may still be queued at the endpoint.
	g.sent("r2", b, true, now)
	if g.admit("r3", c, now) {
		t.Fatal("a slot was freed when its last unit was handed to the endpoint, before the requester said done")
	}
	g.done("r2", b)
	if !g.admit("r3", c, now) {
		t.Fatal("a slot its requester said done with was not given out")
	}
	g.done("r9", a) // someone else's done frees nothing
	if g.busy() != 2 {
		t.Fatalf("%d busy after a stranger's done", g.busy())
	}
	g.sent("r1", a, false, now) // a failed unit frees the slot
	if g.busy() != 1 {
		t.Fatalf("%d busy after a failed unit", g.busy())
	}
	// A requester that stops asking, or never says done, loses its slot
	// after slotIdle.
	if !g.admit("r4", a, now) || g.admit("r5", b, now.Add(time.Second)) {
		t.Fatal("slot accounting")
	}
	if !g.admit("r5", b, now.Add(slotIdle+time.Second)) {
		t.Fatal("idle slots were not freed")
	}
}

func TestSlotGateWait(t *testing.T) {
	g := newSlotGate(1)
	a, b := pieceRef{"x", 0}, pieceRef{"x", 1}
	if !g.admit("r1", a, time.Now()) {
		t.Fatal("a free slot was refused")
	}
	if g.wait(t.Context(), "r2", b, 20*time.Millisecond) {
		t.Fatal("admitted while the only slot is held")
	}
	got := make(chan bool, 1)
	go func() { got <- g.wait(t.Context(), "r2", b, time.Minute) }()
	g.done("r1", a)
	select {
	case ok := <-got:
		if !ok {
			t.Fatal("the waiting request was refused after the slot freed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting request was not given the freed slot")
	}
	if g.busy() != 1 {
		t.Fatalf("%d slots busy, want the waiter's one", g.busy())
	}
}
