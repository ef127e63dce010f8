package render

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// writeFile replaces name (slash-separated, inside root) with data: written
// to a temporary file beside it, synced, given mode, and renamed over name,
// so a reader sees the old file or the new one, never a torn one. Missing
// parent directories are created (0755). A file that already holds data
// with mode is left untouched. It reports whether the file changed.
func writeFile(root *os.Root, name string, data []byte, mode fs.FileMode) (changed bool, err error) {
	mode = mode.Perm()
	if fi, err := root.Stat(name); err == nil {
		if fi.IsDir() {
			return false, fmt.Errorf("write %s: is a directory", name)
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm() == mode {
			if old, err := root.ReadFile(name); err == nil && bytes.Equal(old, data) {
				return false, nil
			}
		}
	}
	dir := path.Dir(name)
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("create directory %s: %w", dir, err)
	}
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	tmp := path.Join(dir, "."+path.Base(name)+".drove-tmp-"+hex.EncodeToString(suffix[:]))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return false, fmt.Errorf("create temporary file for %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = root.Remove(tmp)
		}
	}()
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode) // the umask may have narrowed the create mode
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return false, fmt.Errorf("write %s: %w", name, werr)
	}
	if err := root.Rename(tmp, name); err != nil {
		return false, fmt.Errorf("replace %s: %w", name, err)
	}
	if d, err := root.Open(dir); err == nil {
		serr := d.Sync()
		_ = d.Close()
		if serr != nil && !errors.Is(serr, os.ErrInvalid) {
			return true, fmt.Errorf("sync directory of %s: %w", name, serr)
		}
	}
	return true, nil
}
