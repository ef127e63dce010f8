package media

import (
	"fmt"
	"regexp"
)

// Format is a kind of media image.
type Format string

// The formats Build writes and Verify reads.
const (
	// ISO is an ISO 9660 image with Rock Ridge and Joliet names.
	ISO Format = "iso"
	// Raw is a disk image with an MBR and one FAT32 partition, for dd.
	Raw Format = "raw"
	// Tar is the tree as a tar file.
	Tar Format = "tar"
)

// ParseFormat checks a format a user named.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case ISO, Raw, Tar:
		return f, nil
	}
	return "", fmt.Errorf("media format %q: want iso, raw or tar", s)
}

// Paths in the media tree, relative to its root (io/fs form: no leading
// slash).
const (
	TreeDir      = "drove"
	BinDir       = "drove/bin"
	ImageDir     = "drove/image"
	AgentConfig  = "drove/agent.yaml"
	TokenFile    = "drove/token"
	InstallSh    = "drove/install.sh"
	ManifestPath = "drove/MANIFEST.sha256"
	UserData     = "user-data"
	MetaData     = "meta-data"
)

// BinaryName is the name of the drove binary for arch in BinDir, as
// install.sh looks for it and as --binary-dir must hold it.
func BinaryName(arch string) string { return "drove-linux-" + arch }

// DefaultLabel is the volume label Build writes.
const DefaultLabel = "DROVE"

var labelRE = regexp.MustCompile(`^[A-Z0-9_]{1,11}$`)

// CheckLabel accepts a label both ISO 9660 and FAT32 can carry: 1 to 11
// characters of A-Z, 0-9 and _.
func CheckLabel(l string) error {
	if !labelRE.MatchString(l) {
		return fmt.Errorf("volume label %q: want 1 to 11 characters of A-Z, 0-9 and _ (FAT32 and ISO 9660 allow no more)", l)
	}
	return nil
}

var archRE = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// CheckArch accepts a GOARCH-style architecture name.
func CheckArch(a string) error {
	if !archRE.MatchString(a) {
		return fmt.Errorf("architecture %q: want a Go architecture name such as amd64 or arm64", a)
	}
	return nil
}

// maxFileSize is the largest file ISO 9660 (one extent) and FAT32 hold.
const maxFileSize = 1<<32 - 1
