package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/protocol"
)

// Action runs one kind of step (protocol.Action.Kind) on this node.
//
// Run writes what the step prints to out, which is safe for concurrent use
// (stdout and stderr may be copied into it at once). It returns the step's
// exit code (0 for success; for actions that are not processes, 0 or 1),
// its named outputs, and an error when the step could not run or did not
// finish (ctx ended: the executor then reports a timeout or an
// interruption). A non-zero exit code with a nil error is an ordinary
// failure of the step.
type Action interface {
	Run(ctx context.Context, a protocol.Action, out io.Writer) (exitCode int, outputs map[string]string, err error)
}

// ActionFunc adapts a function to Action.
type ActionFunc func(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error)

// Run calls f.
func (f ActionFunc) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	return f(ctx, a, out)
}

// Registry maps Action.Kind to the Action that runs it. It is safe for
// concurrent use.
type Registry struct {
	mu      sync.RWMutex
	actions map[string]Action
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{actions: map[string]Action{}}
}

// Builtins returns a registry holding the built-in kinds: "shell" (Shell),
// "write-file" (WriteFile) and "noop" (does nothing and succeeds: it lets
// `drove bench steps` measure the dispatch pipeline, not process start-up).
func Builtins() *Registry {
	r := NewRegistry()
	r.Register("shell", Shell{})
	r.Register("write-file", WriteFile{})
	r.Register("noop", ActionFunc(func(context.Context, protocol.Action, io.Writer) (int, map[string]string, error) {
		return 0, nil, nil
	}))
	return r
}

// Register makes kind run with a, replacing any earlier action for kind.
func (r *Registry) Register(kind string, a Action) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions[kind] = a
}

// Lookup returns the action for kind.
func (r *Registry) Lookup(kind string) (Action, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.actions[kind]
	return a, ok
}

// Shell runs Action.Command with /bin/sh -c.
//
// The command gets the agent's environment plus Action.Env, and runs in
// Action.Dir (the agent's working directory if empty). When Action.Rootfs
// names an image (sha256:<hex>), the command also gets ROOTFS set to the
// image's unpacked root filesystem on this node (<DataDir>/rootfs/<hex>)
// and, if Dir is empty, runs there; a step whose image is not on the node
// fails at once with an error wrapping ErrImageNotHere. It leads its own
// process group; when ctx ends (timeout, agent shutdown) the whole group is
// killed with SIGKILL, and the shell gets SIGKILL too if the agent dies
// (Pdeathsig; it survives an exec, so `exec prog` is covered as well, but
// background children of a shell whose parent agent was killed are not).
// After the shell exits normally, children it left in the background keep
// running; their hold on stdout is cut after WaitDelay.
//
// Named outputs: a line the command prints on stdout of the form
//
//	::drove-output NAME=VALUE
//
// sets output NAME to VALUE (everything after the first '=', up to the end
// of the line, without a trailing "\r"). NAME is one or more of
// [A-Za-z0-9_.-]. A later line for the same NAME wins. Such lines still
// appear in the step's output. Lines on stderr, lines longer than
// MaxOutputLine, and outputs beyond MaxOutputsSize in total are ignored.
// Later steps read outputs in their templates as {{output "step" "NAME"}}.
type Shell struct {
	// DataDir is the agent's data directory, where images are unpacked
	// (Action.Rootfs). Without it, steps with Rootfs fail.
	DataDir string
	// WaitDelay bounds the wait for stdout and stderr to close after the
	// shell exited or was killed; 0 means 2s.
	WaitDelay time.Duration
}

// EnvRootfs is the variable through which a shell step with Action.Rootfs
// finds the image's unpacked root filesystem.
const EnvRootfs = "ROOTFS"

// OutputPrefix starts a named-output line on a shell step's stdout.
const OutputPrefix = "::drove-output "

// Bounds on named outputs, so a step's journal record stays small.
const (
	MaxOutputLine  = 64 << 10 // longer stdout lines are never outputs
	MaxOutputsSize = 64 << 10 // names and values of one step, in total
)

// Run implements Action.
func (s Shell) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	if a.Command == "" {
		return -1, nil, errors.New("shell: no command")
	}
	env := a.Env
	dir := a.Dir
	if a.Rootfs != "" {
		rootfs, err := imageRootfs(s.DataDir, a.Rootfs)
		if err != nil {
			return -1, nil, fmt.Errorf("shell: %w", err)
		}
		env = maps.Clone(a.Env)
		if env == nil {
			env = map[string]string{}
		}
		env[EnvRootfs] = rootfs
		if dir == "" {
			dir = rootfs
		}
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", a.Command)
	cmd.Dir = dir
	cmd.Env = shellEnv(os.Environ(), env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		// The shell leads its group (Setpgid), so its pid names the group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = s.WaitDelay
	if cmd.WaitDelay == 0 {
		cmd.WaitDelay = 2 * time.Second
	}
	outs := &outputScanner{}
	cmd.Stdout = io.MultiWriter(out, outs)
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return -1, nil, fmt.Errorf("shell: start: %w", err)
	}
	err := cmd.Wait()
	outs.flush()
	outputs := outs.outputs
	if ctx.Err() != nil {
		return exitCode(cmd), outputs, fmt.Errorf("shell: %w", context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the shell succeeded but left a background child
		// holding its output open; the step itself is done.
		return 0, outputs, nil
	case errors.As(err, &exitErr):
		return exitCode(cmd), outputs, nil
	default:
		return -1, outputs, fmt.Errorf("shell: wait: %w", err)
	}
}

// exitCode is the shell's exit code, or -1 when a signal ended it.
func exitCode(cmd *exec.Cmd) int {
	if cmd.ProcessState == nil {
		return -1
	}
	return cmd.ProcessState.ExitCode()
}

// shellEnv is base with extra set on top, in a stable order.
func shellEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return base
	}
	env := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, over := extra[k]; !over {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// parseOutputLine reads one stdout line (without its "\n") as a named
// output. See Shell for the syntax.
func parseOutputLine(line string) (name, value string, ok bool) {
	rest, found := strings.CutPrefix(line, OutputPrefix)
	if !found {
		return "", "", false
	}
	name, value, found = strings.Cut(rest, "=")
	if !found || !validOutputName(name) {
		return "", "", false
	}
	return name, strings.TrimSuffix(value, "\r"), true
}

func validOutputName(name string) bool {
	if name == "" {
		return false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// outputScanner splits a stream into lines and collects named outputs. It
// is written by one goroutine (exec's stdout copier).
type outputScanner struct {
	line    []byte
	long    bool // the current line passed MaxOutputLine: not an output
	size    int
	outputs map[string]string
}

func (s *outputScanner) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !s.long {
			if len(s.line)+len(chunk) > MaxOutputLine {
				s.long, s.line = true, s.line[:0]
			} else {
				s.line = append(s.line, chunk...)
			}
		}
		if i < 0 {
			break
		}
		s.endLine()
		p = p[i+1:]
	}
	return n, nil
}

func (s *outputScanner) flush() {
	if len(s.line) > 0 || s.long {
		s.endLine()
	}
}

func (s *outputScanner) endLine() {
	if !s.long {
		if name, value, ok := parseOutputLine(string(s.line)); ok {
			s.set(name, value)
		}
	}
	s.line, s.long = s.line[:0], false
}

func (s *outputScanner) set(name, value string) {
	old, had := s.outputs[name]
	size := s.size + len(value)
	if had {
		size -= len(old)
	} else {
		size += len(name)
	}
	if size > MaxOutputsSize {
		return
	}
	if s.outputs == nil {
		s.outputs = map[string]string{}
	}
	s.outputs[name], s.size = value, size
}

// WriteFile writes Action.Content to Action.Path atomically: into a
// temporary file in the same directory, fsynced, renamed over the path, and
// the directory fsynced, so a crash leaves the old file or the new one.
// Parent directories are created (0755). Action.Mode holds permission bits
// (setuid 04000, setgid 02000 and sticky 01000 included); 0 means 0644.
// Path must be absolute, or, when Action.Rootfs names an image, relative
// to that image's unpacked root filesystem on this node (and inside it: no
// ".." that leads out).
type WriteFile struct {
	// DataDir is the agent's data directory, where images are unpacked
	// (Action.Rootfs). Without it, relative paths are refused.
	DataDir string
}

// Run implements Action.
func (w WriteFile) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return 1, nil, fmt.Errorf("write-file: %w", context.Cause(ctx))
	}
	path := a.Path
	switch {
	case filepath.IsAbs(path):
	case a.Rootfs == "":
		return 1, nil, fmt.Errorf("write-file: path %q is not absolute (a relative path needs an image: Action.Rootfs)", a.Path)
	case !filepath.IsLocal(path):
		return 1, nil, fmt.Errorf("write-file: path %q leads out of the image's root filesystem", a.Path)
	default:
		rootfs, err := imageRootfs(w.DataDir, a.Rootfs)
		if err != nil {
			return 1, nil, fmt.Errorf("write-file %s: %w", a.Path, err)
		}
		path = filepath.Join(rootfs, path)
	}
	mode, err := fileMode(a.Mode)
	if err != nil {
		return 1, nil, fmt.Errorf("write-file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 1, nil, fmt.Errorf("write-file %s: create parent directories: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, []byte(a.Content), mode); err != nil {
		return 1, nil, fmt.Errorf("write-file: %w", err)
	}
	fmt.Fprintf(out, "wrote %d bytes to %s (mode %04o)\n", len(a.Content), path, a.Mode|defaultMode(a.Mode))
	return 0, nil, nil
}

func defaultMode(m uint32) uint32 {
	if m == 0 {
		return 0o644
	}
	return 0
}

// fileMode turns Unix permission bits into an os.FileMode.
func fileMode(m uint32) (os.FileMode, error) {
	if m == 0 {
		return 0o644, nil
	}
	if m&^0o7777 != 0 {
		return 0, fmt.Errorf("mode %o has bits beyond 07777", m)
	}
	mode := os.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	return mode, nil
}
