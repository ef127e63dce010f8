//go:build drovetest

package agent

import "testing"

// In drovetest builds DROVE_TEST_CORRUPT_UPLOADS=1 corrupts every unit a
// swarm serves; without it nothing changes.
func TestCorruptFaultSwitch(t *testing.T) {
	if n := newSwarmNode(t, "", "clean", nil); n.sw.corrupt != nil {
		t.Fatal("fault on without DROVE_TEST_CORRUPT_UPLOADS")
	}
	t.Setenv("DROVE_TEST_CORRUPT_UPLOADS", "1")
	n := newSwarmNode(t, "", "liar", nil)
	if n.sw.corrupt == nil {
		t.Fatal("DROVE_TEST_CORRUPT_UPLOADS=1 did not switch the fault on")
	}
	b := []byte{1, 2, 3}
	n.sw.corrupt(b)
	if b[1] == 2 {
		t.Fatal("the fault left the unit as it was")
	}
}
