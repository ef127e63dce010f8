package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/drove-project/drove/deploy/media"
	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/internal/progress"
)

func newMediaCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "media",
		Short: "Build and check boot media (USB stick, ISO, tar) that install agents offline",
		Long: `media builds images that carry everything a machine needs to join a cluster
without a network installer: the drove binary per architecture, the cluster
image as an OCI image layout, the agent's config and token, install.sh and
a cloud-init NoCloud seed that runs it. See deploy/README.md.`,
	}
	cmd.AddCommand(newMediaBuildCmd(g), newMediaVerifyCmd(g))
	return cmd
}

// mediaBuildOptions are `drove media build`'s flags.
type mediaBuildOptions struct {
	Image     string
	Join      []string
	TokenFile string
	Roles     []string
	Labels    []string
	Archs     []string
	BinaryDir string
	Format    string
	Output    string
	Label     string
}

func newMediaBuildCmd(g *Globals) *cobra.Command {
	return mediaBuildCmd(g, &mediaBuildOptions{})
}

// mediaBuildCmd builds the command around o, so tests can read what flags
// set.
func mediaBuildCmd(g *Globals, o *mediaBuildOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "build --image IMAGE --join ADDR --token-file FILE --format iso|raw|tar -o OUT",
		Short: "Write boot media: drove, the cluster image and an agent config",
		Long: `build writes media that install and start a drove agent on any machine
they are attached to. The tree, the same in every format:

  user-data, meta-data            cloud-init NoCloud seed: mounts the media by
                                  label and runs drove/install.sh
  drove/bin/drove-linux-<arch>    the drove binary for each --arch
  drove/image/                    the cluster image (every platform) as an
                                  OCI image layout, for the agent to seed
  drove/agent.yaml, drove/token   join addresses, roles, labels; the token
  drove/install.sh                runs drove agent install from the media
  drove/MANIFEST.sha256           sha256 of every other file (sha256sum -c)

Formats: iso (ISO 9660 with Rock Ridge and Joliet, for virtual media), raw (a
disk image with one FAT32 partition: dd it to a USB stick) or tar. The
volume label is DROVE; cloud-init finds a NoCloud seed on its own only on a
volume labelled CIDATA, so give --label CIDATA for media cloud-init should
run at first boot. Otherwise mount the media and run drove/install.sh.

The binary for this machine's architecture is this drove; the others come
from --binary-dir, which must hold drove-linux-<arch> for each. The media
hold the cluster token: keep them like the token file. The output appears
only when complete (written beside it, then renamed).`,
		Example: `  drove media build --image my-cluster:1 --join 10.0.0.1,10.0.0.2 --token-file token --format raw -o drove.img
  sudo dd if=drove.img of=/dev/sdX bs=4M conv=fsync
  drove media build --image my-cluster:1 --join 10.0.0.1 --token-file token --arch amd64,arm64 --binary-dir dist --format iso -o drove.iso`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMediaBuild(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Image, "image", "", "cluster image from the local store to put on the media")
	f.StringSliceVar(&o.Join, "join", nil, "gossip addresses of cluster members the installed agents join (host or host:port)")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the cluster token")
	f.StringSliceVar(&o.Roles, "roles", nil, "roles of the installed nodes (default node)")
	f.StringSliceVar(&o.Labels, "labels", nil, "labels k=v of the installed nodes (repeatable or comma-separated)")
	f.StringSliceVar(&o.Archs, "arch", []string{runtime.GOARCH}, "architectures to carry a drove binary for")
	f.StringVar(&o.BinaryDir, "binary-dir", "", "directory with drove-linux-<arch> for architectures other than this drove's")
	f.StringVar(&o.Format, "format", "", "iso, raw or tar (default: from -o's extension .iso, .img/.raw or .tar)")
	f.StringVarP(&o.Output, "output", "o", "", "file to write")
	f.StringVar(&o.Label, "label", media.DefaultLabel, "volume label (up to 11 of A-Z, 0-9, _)")
	return cmd
}

// spec turns the flags into a media.Spec (without the store and progress).
func (o *mediaBuildOptions) spec() (media.Spec, error) {
	var s media.Spec
	if o.Image == "" {
		return s, usageErrorf("no image: give --image IMAGE (see drove images)")
	}
	if o.Output == "" {
		return s, usageErrorf("no output: give -o FILE")
	}
	if len(o.Join) == 0 {
		return s, usageErrorf("no --join: the installed agents need the address of a cluster member")
	}
	if o.TokenFile == "" {
		return s, usageErrorf("no --token-file: the media carry the cluster token")
	}
	format := o.Format
	if format == "" {
		switch strings.ToLower(filepath.Ext(o.Output)) {
		case ".iso":
			format = "iso"
		case ".img", ".raw":
			format = "raw"
		case ".tar":
			format = "tar"
		default:
			return s, usageErrorf("no --format, and -o %s has no .iso, .img, .raw or .tar extension", o.Output)
		}
	}
	f, err := media.ParseFormat(format)
	if err != nil {
		return s, usageErrorf("--format: %v", err)
	}
	s.Format, s.Image, s.Label = f, o.Image, o.Label
	if err := media.CheckLabel(o.Label); err != nil {
		return s, usageErrorf("--label: %v", err)
	}
	b, err := os.ReadFile(o.TokenFile)
	if err != nil {
		return s, usageErrorf("--token-file: %v", err)
	}
	token, err := clusterauth.CheckToken(string(b))
	if err != nil {
		return s, usageErrorf("--token-file %s: %v", o.TokenFile, err)
	}
	s.Token = []byte(token + "\n")
	if s.Binaries, err = o.binaries(); err != nil {
		return s, err
	}
	if s.AgentConfig, err = o.agentConfig(); err != nil {
		return s, err
	}
	return s, nil
}

// binaries finds the drove binary for each --arch: this one for its own
// architecture (on Linux), else drove-linux-<arch> in --binary-dir.
func (o *mediaBuildOptions) binaries() (map[string]string, error) {
	out := map[string]string{}
	for _, a := range o.Archs {
		if err := media.CheckArch(a); err != nil {
			return nil, usageErrorf("--arch: %v", err)
		}
		if runtime.GOOS == "linux" && a == runtime.GOARCH {
			self, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("find this drove binary: %w", err)
			}
			out[a] = self
			continue
		}
		if o.BinaryDir == "" {
			return nil, usageErrorf("--arch %s: this drove is %s/%s; give --binary-dir DIR holding %s",
				a, runtime.GOOS, runtime.GOARCH, media.BinaryName(a))
		}
		p := filepath.Join(o.BinaryDir, media.BinaryName(a))
		st, err := os.Stat(p)
		if err != nil {
			return nil, usageErrorf("--arch %s: no drove binary for it: %v (build it with GOOS=linux GOARCH=%s go build -o %s ./cmd/drove)", a, err, a, p)
		}
		if !st.Mode().IsRegular() {
			return nil, usageErrorf("--arch %s: %s is not a regular file", a, p)
		}
		out[a] = p
	}
	return out, nil
}

// agentConfig is the media's drove/agent.yaml: the settings drove agent
// install takes from --config (the token travels in drove/token).
func (o *mediaBuildOptions) agentConfig() ([]byte, error) {
	c := agentOptions{Join: o.Join, Roles: o.Roles}
	for _, kv := range o.Labels {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--labels %q: want key=value", kv)
		}
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		c.Labels[k] = v
	}
	if len(c.Roles) == 0 {
		c.Roles = []string{"node"}
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode agent.yaml: %w", err)
	}
	return append([]byte("# Written by drove media build; install.sh passes it to drove agent install --config.\n"), b...), nil
}

func runMediaBuild(ctx context.Context, g *Globals, o *mediaBuildOptions) error {
	spec, err := o.spec()
	if err != nil {
		return err
	}
	if spec.Store, err = g.Store(); err != nil {
		return err
	}
	spec.Log = g.Log
	rep := g.Progress()
	ph := &phases{rep: rep}
	spec.Progress = ph.set
	res, err := media.Build(ctx, spec, o.Output)
	ph.done(err)
	rep.Wait()
	if err != nil {
		return err
	}
	archs := slices.Sorted(func(yield func(string) bool) {
		for a := range spec.Binaries {
			if !yield(a) {
				return
			}
		}
	})
	fmt.Fprintf(g.Out, "wrote %s: %s media, %d files (%s), %s; binaries for %s\n", o.Output, res.Format, res.Files,
		progress.HumanBytes(res.Bytes), progress.HumanBytes(res.Size), strings.Join(archs, ", "))
	return nil
}

// phases shows one progress tracker per phase of a media build.
type phases struct {
	rep  *progress.Reporter
	name string
	tr   progress.Tracker
}

func (p *phases) set(phase string, done, total int64) {
	if phase != p.name {
		p.done(nil)
		p.name, p.tr = phase, p.rep.Track("media: "+phase)
	}
	p.tr.Set(done, total)
}

func (p *phases) done(err error) {
	if p.tr != nil {
		p.tr.Done(err)
		p.tr = nil
	}
}

func newMediaVerifyCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify MEDIA",
		Short: "Check every file of media against their MANIFEST.sha256",
		Long: `verify reads media written by drove media build (an iso, raw or tar file,
told apart by content, or a directory where media are mounted) and checks
the sha256 of every file their drove/MANIFEST.sha256 lists. It names each
file that is missing or differs and then exits 1. Files not in the manifest
are listed but do not fail the check.`,
		Example: `  drove media verify drove.iso
  drove media verify /dev/sdb    # a stick written with dd (as root)`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := media.Verify(cmd.Context(), args[0])
			if r != nil {
				printMediaReport(g, args[0], r)
			}
			return err
		},
	}
}

func printMediaReport(g *Globals, name string, r *media.Report) {
	for _, p := range r.Mismatched {
		fmt.Fprintf(g.Out, "MISMATCH  %s\n", p)
	}
	for _, p := range r.Missing {
		fmt.Fprintf(g.Out, "MISSING   %s\n", p)
	}
	for _, p := range r.Unlisted {
		fmt.Fprintf(g.Out, "unlisted  %s\n", p)
	}
	kind := string(r.Format)
	if kind == "" {
		kind = "directory"
	}
	if r.OK() {
		fmt.Fprintf(g.Out, "%s (%s): all %d files match %s\n", name, kind, r.Checked, media.ManifestPath)
		return
	}
	fmt.Fprintf(g.Out, "%s (%s): %d of %d files do not match %s\n", name, kind, len(r.Mismatched)+len(r.Missing), r.Checked, media.ManifestPath)
}
