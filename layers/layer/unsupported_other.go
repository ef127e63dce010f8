//go:build !linux

package layer

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Apply unpacks a layer over dir; it is implemented on Linux only.
func Apply(ctx context.Context, dir string, r io.Reader) (int64, error) {
	return 0, fmt.Errorf("apply layer to %s: %w", dir, errors.ErrUnsupported)
}

// ApplyOverlayLower unpacks a layer as an overlay lower; it is implemented
// on Linux only.
func ApplyOverlayLower(ctx context.Context, dir string, r io.Reader) (int64, error) {
	return 0, fmt.Errorf("apply layer to %s: %w", dir, errors.ErrUnsupported)
}

// CopyTree copies a directory tree; it is implemented on Linux only.
func CopyTree(ctx context.Context, src, dst string) error {
	return fmt.Errorf("copy tree %s: %w", src, errors.ErrUnsupported)
}

// MountOverlay mounts an overlay filesystem; it needs Linux.
func MountOverlay(ctx context.Context, lowers []string, upper, work, target string) (func() error, error) {
	return nil, fmt.Errorf("mount overlay at %s: %w", target, errors.ErrUnsupported)
}

// DiffOverlayUpper writes an overlay upper directory as a layer; it needs
// Linux.
func DiffOverlayUpper(ctx context.Context, w io.Writer, upperDir string, opts Options) (Result, error) {
	return Result{}, fmt.Errorf("diff overlay upper %s: %w", upperDir, errors.ErrUnsupported)
}
