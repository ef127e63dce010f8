package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrImageNotHere is wrapped by the error of a step that names an image
// (Action.Rootfs) this node has not unpacked: a distribute step must
// deliver it first.
var ErrImageNotHere = errors.New("image is not on this node")

// imageNotHereError says which image is missing and where it was looked for.
type imageNotHereError struct {
	digest string
	dir    string
}

func (e *imageNotHereError) Error() string {
	return fmt.Sprintf("image %s is not on this node (no %s): distribute it first", e.digest, e.dir)
}

func (e *imageNotHereError) Unwrap() error { return ErrImageNotHere }

// RootfsDir is where an image with digest ("sha256:<64 hex>") is unpacked
// under an agent's data directory: <dataDir>/rootfs/<hex>, as a distribute
// step leaves it. It only computes the path; a digest of another form is
// an error (it must not lead out of the data directory).
func RootfsDir(dataDir, digest string) (string, error) {
	hex, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", fmt.Errorf("rootfs %q is not an image digest (sha256: and 64 lowercase hex digits)", digest)
	}
	if dataDir == "" {
		return "", fmt.Errorf("image %s: this agent has no data directory to find it in", digest)
	}
	return filepath.Join(dataDir, "rootfs", hex), nil
}

// imageRootfs returns the unpacked root filesystem of the image digest on
// this node, or an error wrapping ErrImageNotHere when it is not there.
// Unpacking is atomic, so a directory that exists is complete.
func imageRootfs(dataDir, digest string) (string, error) {
	dir, err := RootfsDir(dataDir, digest)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", &imageNotHereError{digest: digest, dir: dir}
	case err != nil:
		return "", fmt.Errorf("image %s: %w", digest, err)
	case !fi.IsDir():
		return "", fmt.Errorf("image %s: %s is not a directory; remove it and distribute the image again", digest, dir)
	}
	return dir, nil
}
