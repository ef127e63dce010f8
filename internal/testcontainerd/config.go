package testcontainerd

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Binary and CtrBinary are Debian's containerd and its ctr client.
const (
	Binary    = "/usr/bin/containerd"
	CtrBinary = "/usr/bin/ctr"
)

// maxSocketPath bounds the socket paths Command writes into the config:
// a unix socket path must fit sun_path (108 bytes on Linux), and
// containerd adds ".ttrpc" for the second socket.
const maxSocketPath = 100

// socketName is the gRPC socket's file name; the ttrpc socket is the same
// path with ".ttrpc" appended.
const socketName = "containerd.sock"

// disabledPlugins are turned off in every test daemon: the CRI plugin
// (it would want CNI, a stream server and its own state), and the
// snapshotters this machine has no backing for, which only log noise.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.snapshotter.v1.aufs",
	"io.containerd.snapshotter.v1.btrfs",
	"io.containerd.snapshotter.v1.devmapper",
	"io.containerd.snapshotter.v1.zfs",
}

// Layout is where a daemon for one directory keeps its files.
type Layout struct {
	Dir        string // the directory given to Command
	Root       string // Dir/root: content, metadata, snapshots
	State      string // Dir/state: runtime state
	Opt        string // Dir/opt: the opt plugin's directory
	ConfigPath string // Dir/config.toml
	LogPath    string // Dir/containerd.log, used by Start
	// Address is the gRPC socket: Dir/containerd.sock, or, when that path
	// would be too long for a unix socket, SocketDir(Dir)/containerd.sock.
	Address string
}

// LayoutFor returns the paths a daemon for dir uses. It touches nothing.
func LayoutFor(dir string) Layout {
	return Layout{
		Dir:        dir,
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Opt:        filepath.Join(dir, "opt"),
		ConfigPath: filepath.Join(dir, "config.toml"),
		LogPath:    filepath.Join(dir, "containerd.log"),
		Address:    filepath.Join(SocketDir(dir), socketName),
	}
}

// SocketDir is the directory holding the daemon's sockets for dir: dir
// itself when the socket paths fit in maxSocketPath bytes, otherwise a
// short directory in /tmp named after a hash of dir
// (/tmp/drove-ctd-<12 hex>), the same for the same dir every time. The
// caller of Command removes that short directory when done; Start does so
// itself.
func SocketDir(dir string) string {
	if len(filepath.Join(dir, socketName+".ttrpc")) < maxSocketPath {
		return dir
	}
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	return filepath.Join(os.TempDir(), "drove-ctd-"+hex.EncodeToString(sum[:6]))
}

// Command writes a containerd configuration for dir and returns, without
// starting it, the command that runs containerd with it, and the config
// path. Everything the daemon keeps (root, state, opt, config, sockets)
// lives under dir, except the sockets when dir is too long for them (see
// SocketDir). The config is version 2 with the CRI plugin disabled, the
// overlayfs snapshotter as default, and no debug or metrics listener, so
// any number of daemons run side by side. The command dies with its
// parent (Pdeathsig on Linux); its output is not redirected.
func Command(dir string) (*exec.Cmd, string, error) {
	cmd, l, err := prepare(dir)
	if err != nil {
		return nil, "", err
	}
	return cmd, l.ConfigPath, nil
}

// prepare creates the directories and config for dir and builds the
// command; Command and Start share it.
func prepare(dir string) (*exec.Cmd, Layout, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, Layout{}, fmt.Errorf("resolve containerd dir %s: %w", dir, err)
	}
	l := LayoutFor(abs)
	for _, d := range []string{l.Dir, l.Root, l.State, l.Opt, filepath.Dir(l.Address)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, Layout{}, fmt.Errorf("create containerd dir: %w", err)
		}
	}
	if err := os.WriteFile(l.ConfigPath, []byte(configTOML(l)), 0o600); err != nil {
		return nil, Layout{}, fmt.Errorf("write containerd config: %w", err)
	}
	cmd := exec.Command(Binary, "--config", l.ConfigPath)
	cmd.SysProcAttr = sysProcAttr()
	return cmd, l, nil
}

// configTOML renders the daemon's config.toml for l.
func configTOML(l Layout) string {
	q := strconv.Quote
	quoted := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		quoted[i] = q(p)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version = 2\n")
	fmt.Fprintf(&b, "root = %s\n", q(l.Root))
	fmt.Fprintf(&b, "state = %s\n", q(l.State))
	fmt.Fprintf(&b, "disabled_plugins = [%s]\n", strings.Join(quoted, ", "))
	fmt.Fprintf(&b, "\n[grpc]\n  address = %s\n", q(l.Address))
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %s\n", q(l.Address+".ttrpc"))
	fmt.Fprintf(&b, "\n[debug]\n  address = \"\"\n  level = \"info\"\n")
	fmt.Fprintf(&b, "\n[metrics]\n  address = \"\"\n")
	fmt.Fprintf(&b, "\n[plugins]\n")
	fmt.Fprintf(&b, "  [plugins.\"io.containerd.internal.v1.opt\"]\n    path = %s\n", q(l.Opt))
	fmt.Fprintf(&b, "  [plugins.\"io.containerd.service.v1.diff-service\"]\n    default = [\"walking\"]\n")
	return b.String()
}
