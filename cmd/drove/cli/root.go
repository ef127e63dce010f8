// Package cli is drove's command tree. Each command has an options struct
// filled from flags and a run function that does the work with the IO
// streams it is given, so both halves can be tested on their own.
package cli

import (
	"context"
	"errors"
	"fmt"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/build"
	"github.com/drove-project/drove/layers/store"
)

// Streams are the command's standard streams: data to Out, progress, logs
// and errors to Err.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
}

// SystemStreams are the process's own stdin, stdout and stderr.
func SystemStreams() Streams { return Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr} }

// Globals hold the root command's flags and what is derived from them.
type Globals struct {
	Streams
	DataDir string
	Debug   bool
	Quiet   bool
	Log     *slog.Logger
}

// Store opens the local image store under the data directory.
func (g *Globals) Store() (*store.Store, error) {
	return store.Open(filepath.Join(g.DataDir, "store"))
}

// Progress returns a reporter for long work, on stderr.
func (g *Globals) Progress() *progress.Reporter { return progress.New(g.Err, g.Quiet) }

// exitError carries a specific exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes, mapped in one place.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// usageErrorf reports a mistake in flags or arguments (exit code 2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// Execute runs drove with args and returns the process exit code.
func Execute(ctx context.Context, args []string, s Streams) int {
	g := &Globals{Streams: s}
	root := NewRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(s.Err, "Error: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

// NewRootCmd builds the whole command tree around g.
func NewRootCmd(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "drove",
		Short: "Build cluster images and install whole clusters from them",
		Long: `drove builds cluster images from Kubefiles (sealer's format) and installs
whole clusters from them. A cluster image is one OCI image holding every file
a cluster needs: binaries, configs, charts, manifests and container images.

Images live in a local content store under --data-dir and move between
machines through any OCI registry (push/pull) or an archive (save/load).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if g.Debug {
				level = slog.LevelDebug
			}
			g.Log = slog.New(slog.NewTextHandler(g.Err, &slog.HandlerOptions{Level: level}))
			// Libraries that log to the default logger (Helm's chart
			// loader warns there) go through the same handler and level.
			slog.SetDefault(g.Log)
			if g.DataDir == "" {
				return usageErrorf("no data directory: set --data-dir or DROVE_DATA_DIR")
			}
			return nil
		},
	}
	root.SetIn(g.In)
	root.SetOut(g.Out)
	root.SetErr(g.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &exitError{code: exitUsage, err: err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.DataDir, "data-dir", defaultDataDir(), "where drove keeps images and state (env DROVE_DATA_DIR)")
	pf.BoolVarP(&g.Debug, "debug", "d", false, "log debug messages")
	pf.BoolVarP(&g.Quiet, "quiet", "q", false, "show no progress")

	root.AddCommand(
		newVersionCmd(g),
		newImagesCmd(g),
		newInspectCmd(g),
		newTagCmd(g),
		newRmiCmd(g),
		newBuildCmd(g),
		newPushCmd(g),
		newDistributeCmd(g),
		newPullCmd(g),
		newLoginCmd(g),
		newLogoutCmd(g),
		newSaveCmd(g),
		newLoadCmd(g),
		newBenchCmd(g),
		newAgentCmd(g),
		newStatusCmd(g),
		newExecCmd(g),
		newPlanCmd(g),
		newRetryCmd(g),
		newTokenCmd(g),
		newLabCmd(g),
		newRunCmd(g),
		newApplyCmd(g),
		newJoinCmd(g),
		newDeleteCmd(g),
		newUpgradeCmd(g),
		newRollbackCmd(g),
		newCertCmd(g),
		newMediaCmd(g),
	)
	return root
}

// defaultDataDir is $DROVE_DATA_DIR, else /var/lib/drove for root, else
// $XDG_DATA_HOME/drove or ~/.local/share/drove.
func defaultDataDir() string {
	if d := os.Getenv("DROVE_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/drove"
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "drove")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "drove")
	}
	return ""
}

// cacheKeeps tells Prune which blobs the build cache still points at.
func (g *Globals) cacheKeeps() (func(v1.Hash) bool, error) {
	return build.KeepFunc(filepath.Join(g.DataDir, "build"))
}
