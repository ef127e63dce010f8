package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// privateMounts prepares n's own copies of its Private paths under
// <DataDir>/private and returns the command that runs the agent in a new
// mount namespace with each copy bind-mounted over its path:
//
//	unshare --mount --propagation private -- sh -c 'mount --bind …; exec "$@"' sh
//
// followed by the agent's argv. Every step the agent runs inherits the
// namespace, so a script that edits /etc/hosts edits this node's copy.
func (n *Node) privateMounts() ([]string, error) {
	var script strings.Builder
	script.WriteString("set -e\n")
	for _, p := range n.Private {
		src := n.PrivatePath(p)
		st, err := os.Stat(p)
		isFile := err == nil && !st.IsDir()
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			// The mount point must exist: a directory, empty.
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, fmt.Errorf("create mount point %s: %w", p, err)
			}
		default:
			return nil, fmt.Errorf("private path %s: %w", p, err)
		}
		if isFile {
			if err := copyIfAbsent(p, src); err != nil {
				return nil, err
			}
		} else if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, fmt.Errorf("private copy of %s: %w", p, err)
		}
		fmt.Fprintf(&script, "mount --bind %s %s\n", shellQuote(src), shellQuote(p))
	}
	script.WriteString(`exec "$@"`)
	return []string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script.String(), "sh"}, nil
}

// copyIfAbsent copies the host file hostPath to dst unless dst exists (a
// restarted node keeps what its steps wrote).
func copyIfAbsent(hostPath, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("private copy of %s: %w", hostPath, err)
	}
	st, err := os.Stat(hostPath)
	if err != nil {
		return fmt.Errorf("private copy of %s: %w", hostPath, err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("private copy of %s: %w", hostPath, err)
	}
	// Same mode: a copy of /etc/shadow stays unreadable to others.
	if err := os.WriteFile(dst, b, st.Mode().Perm()); err != nil {
		return fmt.Errorf("private copy of %s: %w", hostPath, err)
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
