package cli

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/drove-project/drove/deploy/systemd"
	"github.com/drove-project/drove/internal/atomicfile"
)

// writeInstall puts the binary, config, token and unit in place, each only
// if its content differs, and reports whether any did.
func writeInstall(l installLayout, binary string, config []byte, token string) (bool, error) {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Dir(l.Binary), 0o755}, {l.EtcDir, 0o755}, {filepath.Dir(l.Unit), 0o755},
		{filepath.Dir(l.Log), 0o755}, {filepath.Dir(l.PID), 0o755}, {l.DataDir, 0o700},
	} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return false, fmt.Errorf("install: create %s: %w", d.path, err)
		}
	}
	changed, err := ensureCopy(binary, l.Binary, 0o755)
	if err != nil {
		return false, err
	}
	for _, f := range []struct {
		path    string
		content []byte
		mode    os.FileMode
	}{
		{l.Config, config, 0o644},
		{l.Token, []byte(token + "\n"), 0o600},
		{l.Unit, renderUnit(l), 0o644},
	} {
		c, err := ensureFile(f.path, f.content, f.mode)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	return changed, nil
}

// renderUnit is drove-agent.service with its paths moved under the
// layout's root.
func renderUnit(l installLayout) []byte {
	if l.system() {
		return systemd.Unit
	}
	r := strings.NewReplacer(systemd.Binary, l.Binary, systemd.Config, l.Config)
	return []byte(r.Replace(string(systemd.Unit)))
}

// ensureFile writes content to path with mode unless it already holds
// exactly that; a wrong mode alone is corrected without counting as a
// change.
func ensureFile(path string, content []byte, mode os.FileMode) (bool, error) {
	old, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(old, content):
		return false, fixMode(path, mode)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return false, fmt.Errorf("install: read %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, content, mode); err != nil {
		return false, fmt.Errorf("install: %w", err)
	}
	return true, nil
}

// ensureCopy copies the file src to dst unless both hold the same bytes
// (or are the same file).
func ensureCopy(src, dst string, mode os.FileMode) (bool, error) {
	ss, err := os.Stat(src)
	if err != nil {
		return false, fmt.Errorf("install: binary %s: %w", src, err)
	}
	if ds, err := os.Stat(dst); err == nil {
		if os.SameFile(ss, ds) {
			return false, fixMode(dst, mode)
		}
		if ds.Size() == ss.Size() {
			a, errA := fileSum(src)
			b, errB := fileSum(dst)
			if errA == nil && errB == nil && a == b {
				return false, fixMode(dst, mode)
			}
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return false, fmt.Errorf("install: open binary %s: %w", src, err)
	}
	defer in.Close()
	// A new file renamed over the old: a running agent keeps its copy.
	err = atomicfile.Write(dst, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("install: copy %s: %w", src, err)
	}
	return true, nil
}

func fixMode(path string, mode os.FileMode) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if st.Mode().Perm() == mode {
		return nil
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	return nil
}

func fileSum(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// removeInstall removes what writeInstall wrote (and, with purge, the data
// directory and log), leaving /etc/drove only if something else is in it.
// Missing files are fine.
func removeInstall(l installLayout, purge bool) ([]string, error) {
	paths := []string{l.Unit, l.Token, l.Config, l.Binary, l.PID}
	if purge {
		paths = append(paths, l.Log)
	}
	var removed []string
	for _, p := range paths {
		err := os.Remove(p)
		switch {
		case err == nil:
			removed = append(removed, p)
		case !errors.Is(err, fs.ErrNotExist):
			return removed, fmt.Errorf("uninstall: %w", err)
		}
	}
	if err := os.Remove(l.EtcDir); err == nil {
		removed = append(removed, l.EtcDir)
	}
	if purge {
		if _, err := os.Stat(l.DataDir); err == nil {
			if err := os.RemoveAll(l.DataDir); err != nil {
				return removed, fmt.Errorf("uninstall: remove the data directory: %w", err)
			}
			removed = append(removed, l.DataDir)
		}
	}
	return removed, nil
}
