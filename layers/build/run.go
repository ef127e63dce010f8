package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/drove-project/drove/layers/kubefile"
	"github.com/drove-project/drove/layers/layer"
)

// runStep runs a RUN instruction with the rootfs built so far as its working
// directory and stores what it changed as a layer. As root the rootfs is an
// overlay mount of the layers (nothing is copied); otherwise it is a
// materialised copy, diffed against a snapshot afterwards.
func (b *builder) runStep(ctx context.Context, st *imageState, step kubefile.Step, res *Result) error {
	host := HostPlatform()
	if st.platform.OS != host.OS || st.platform.Architecture != host.Architecture {
		return fmt.Errorf("RUN needs a %s machine but this one is %s; drove does not emulate other architectures (build that platform on a %s machine, or move the work into COPY)",
			st.platform.String(), host.String(), st.platform.Architecture)
	}
	argsJSON, _ := json.Marshal(step.Args)
	key := keyOf(st.key, "RUN", string(argsJSON), strconv.FormatBool(step.JSON), strings.Join(step.Env, "\x00"))
	if !b.o.NoCache && b.reuse(st, step, key, res) {
		return nil
	}
	runs := filepath.Join(b.o.WorkDir, "runs")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(runs, strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if useOverlay() {
		return b.runOverlay(ctx, st, step, key, dir, res)
	}
	return b.runCopy(ctx, st, step, key, dir, res)
}

func (b *builder) runOverlay(ctx context.Context, st *imageState, step kubefile.Step, key, dir string, res *Result) error {
	lowers, err := b.overlayLowers(ctx, st)
	if err != nil {
		return err
	}
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	unmount, err := layer.MountOverlay(ctx, lowers, upper, work, merged)
	if err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	runErr := b.execRun(ctx, step, merged)
	if err := unmount(); err != nil && runErr == nil {
		runErr = fmt.Errorf("unmount rootfs: %w", err)
	}
	if runErr != nil {
		return runErr
	}
	if empty, err := dirEmpty(upper); err != nil || empty {
		if err != nil {
			return err
		}
		return b.emptyLayer(st, step, key, res)
	}
	w, err := b.s.NewBlobWriter()
	if err != nil {
		return err
	}
	defer w.Cancel()
	lr, err := layer.DiffOverlayUpper(ctx, w, upper, layer.Options{Compression: b.o.Compression})
	if err != nil {
		return err
	}
	if err := b.commitLayer(st, step, key, w, lr, res); err != nil {
		return err
	}
	// The upper dir is already in overlay form: keep it as this layer's
	// lower for later RUNs instead of unpacking the blob again.
	dst := b.unpackedDir(lr.DiffID)
	if _, err := os.Stat(dst); errors.Is(err, os.ErrNotExist) {
		os.Rename(upper, dst)
	}
	return nil
}

func (b *builder) runCopy(ctx context.Context, st *imageState, step kubefile.Step, key, dir string, res *Result) error {
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	for _, l := range st.layers {
		if err := b.applyLayer(ctx, rootfs, l); err != nil {
			return err
		}
	}
	before, err := layer.Snapshot(ctx, rootfs)
	if err != nil {
		return err
	}
	if err := b.execRun(ctx, step, rootfs); err != nil {
		return err
	}
	w, err := b.s.NewBlobWriter()
	if err != nil {
		return err
	}
	defer w.Cancel()
	// Count changes first so an unchanged tree gives an empty layer.
	lr, err := layer.DiffTrees(ctx, w, before, rootfs, layer.Options{Compression: b.o.Compression})
	if err != nil {
		return err
	}
	if lr.DiffID == emptyTarDiffID {
		return b.emptyLayer(st, step, key, res)
	}
	return b.commitLayer(st, step, key, w, lr, res)
}

// emptyTarDiffID is the digest of a tar with no entries (two zero blocks).
var emptyTarDiffID = v1.Hash{Algorithm: "sha256", Hex: "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"}

func (b *builder) emptyLayer(st *imageState, step kubefile.Step, key string, res *Result) error {
	cl := cachedLayer{Empty: true, Notes: b.takeNotes()}
	if err := b.cache.put("steps", key, cl); err != nil {
		return err
	}
	b.appendLayer(st, step, key, cl)
	res.Steps++
	fmt.Fprintln(b.o.Out, " ---> no changes")
	return nil
}

// execRun runs the command: shell form through sh -c, JSON form directly.
func (b *builder) execRun(ctx context.Context, step kubefile.Step, dir string) error {
	var cmd *exec.Cmd
	if step.JSON {
		if len(step.Args) == 0 {
			return errors.New("empty command")
		}
		cmd = exec.CommandContext(ctx, step.Args[0], step.Args[1:]...)
	} else {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", strings.Join(step.Args, " "))
	}
	cmd.Dir = dir
	cmd.Env = runEnv(step.Env)
	if b.o.RunHook != nil {
		// The hook's variables first: a Kubefile ENV of the same name wins.
		cmd.Env = append(b.o.RunHook.Env(), cmd.Env...)
		defer func() { b.notes = b.o.RunHook.Ran() }()
	}
	cmd.Stdout = b.o.Out
	cmd.Stderr = b.o.Out
	// Own process group so cancel kills the whole command; Pdeathsig so a
	// killed build does not leave the command running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("command failed with exit code %d", ee.ExitCode())
		}
		return fmt.Errorf("run command: %w", err)
	}
	return nil
}

// takeNotes hands over what the RunHook said about the RUN just run.
func (b *builder) takeNotes() []string {
	n := b.notes
	b.notes = nil
	return n
}

// useOverlay says whether RUN can mount overlayfs (root only); tests
// switch it to cover the copy path too.
var useOverlay = func() bool { return os.Geteuid() == 0 }

// runEnv is the step's environment plus the host's PATH and HOME when the
// image sets none: RUN runs host tools in the rootfs directory.
func runEnv(env []string) []string {
	out := append([]string(nil), env...)
	for _, k := range []string{"PATH", "HOME"} {
		found := false
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				found = true
			}
		}
		if !found {
			if v, ok := os.LookupEnv(k); ok {
				out = append(out, k+"="+v)
			}
		}
	}
	return out
}

// overlayLowers returns one unpacked directory per layer, top first, in
// overlay form (whiteouts as 0/0 character devices, opaque directories
// marked with the trusted.overlay.opaque xattr). A FROM scratch image with
// no layers yet gets one empty lower, as overlayfs needs one.
func (b *builder) overlayLowers(ctx context.Context, st *imageState) ([]string, error) {
	var lowers []string
	for i := len(st.layers) - 1; i >= 0; i-- {
		d := b.unpackedDir(st.diffIDs[i])
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			if err := b.unpackForOverlay(ctx, st.layers[i], d); err != nil {
				return nil, err
			}
		}
		lowers = append(lowers, d)
	}
	if len(lowers) == 0 {
		d := filepath.Join(b.o.WorkDir, "layers", "empty")
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		lowers = append(lowers, d)
	}
	return lowers, nil
}

func (b *builder) unpackedDir(diffID v1.Hash) string {
	return filepath.Join(b.o.WorkDir, "layers", diffID.Hex)
}

// unpackForOverlay unpacks a layer blob into dst (via a temp dir and a
// rename, so a killed build leaves no half directory), turning its OCI
// whiteouts into overlay ones.
func (b *builder) unpackForOverlay(ctx context.Context, l v1.Descriptor, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	err = b.applyLayerWith(ctx, l, func(r *os.File) error {
		dr, err := layer.Decompress(r)
		if err != nil {
			return err
		}
		defer dr.Close()
		_, err = layer.ApplyOverlayLower(ctx, tmp, dr)
		return err
	})
	if err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func (b *builder) applyLayer(ctx context.Context, dir string, l v1.Descriptor) error {
	return b.applyLayerWith(ctx, l, func(r *os.File) error {
		dr, err := layer.Decompress(r)
		if err != nil {
			return err
		}
		defer dr.Close()
		_, err = layer.Apply(ctx, dir, dr)
		return err
	})
}

func (b *builder) applyLayerWith(ctx context.Context, l v1.Descriptor, fn func(*os.File) error) error {
	f, err := b.s.OpenBlob(l.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := fn(f); err != nil {
		return fmt.Errorf("unpack layer %s: %w", l.Digest, err)
	}
	return nil
}

func dirEmpty(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	return len(ents) == 0, err
}

// cleanStaleRuns unmounts and removes RUN directories left by builds that
// were killed (their PID, the name's prefix, is gone).
func cleanStaleRuns(runs string, log *slog.Logger) {
	ents, err := os.ReadDir(runs)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(strings.SplitN(e.Name(), "-", 2)[0])
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		dir := filepath.Join(runs, e.Name())
		unix.Unmount(filepath.Join(dir, "merged"), unix.MNT_DETACH)
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove stale build directory", "dir", dir, "err", err)
		}
	}
}
