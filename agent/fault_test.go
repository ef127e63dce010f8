//go:build !drovetest

package agent

import "testing"

// Production builds have no corrupting fault, whatever the environment.
func TestNoCorruptFaultWithoutTag(t *testing.T) {
	t.Setenv("DROVE_TEST_CORRUPT_UPLOADS", "1")
	n := newSwarmNode(t, "", "n", nil)
	if n.sw.corrupt != nil {
		t.Fatal("DROVE_TEST_CORRUPT_UPLOADS switched on a fault in a build without the drovetest tag")
	}
}
