//go:build drovetest

package agent

import "os"

// faultCorruptUploads reports whether the test fault that corrupts served
// units is on: in binaries built with the drovetest tag, when the
// environment has DROVE_TEST_CORRUPT_UPLOADS=1. Lab tests use it to prove
// that peers ban a node serving bad pieces (DESIGN.md invariant 1).
func faultCorruptUploads() bool { return os.Getenv("DROVE_TEST_CORRUPT_UPLOADS") == "1" }
