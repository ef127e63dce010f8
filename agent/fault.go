//go:build !drovetest

package agent

// faultCorruptUploads reports whether the test fault that corrupts served
// units is on. Production builds have no such fault: it is always off
// (fault_drovetest.go has the switch).
func faultCorruptUploads() bool { return false }
