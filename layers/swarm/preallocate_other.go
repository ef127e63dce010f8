//go:build !linux

package swarm

import "os"

// preallocate sets f's size (no space is reserved on this system).
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }
