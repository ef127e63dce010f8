package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/layers/archive"
	"github.com/drove-project/drove/layers/store"
)

type saveOptions struct {
	Output   string
	Format   string
	Platform string
}

func newSaveCmd(g *Globals) *cobra.Command {
	o := &saveOptions{}
	cmd := &cobra.Command{
		Use:   "save -o FILE IMAGE...",
		Short: "Write images to an archive for offline transfer",
		Long: `save writes one or more local images into a single tar archive: an OCI image
layout (oci-archive, the default, which skopeo, podman and drove read, with
every platform of an index) or docker save's format (docker-archive, one
platform per image). The file appears under its name only once it is whole.`,
		Example: "  drove save -o k8s.tar k8s:v1.28\n  drove save --format docker-archive -o app.tar app:v1",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Output == "" {
				return usageErrorf("save needs an output file: -o FILE")
			}
			return runSave(cmd.Context(), g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Output, "output", "o", "", "archive file to write (- for stdout)")
	f.StringVar(&o.Format, "format", "oci-archive", "oci-archive or docker-archive")
	f.StringVar(&o.Platform, "platform", "", "for docker-archive: the platform of a multi-platform image (default: this machine's)")
	return cmd
}

func runSave(ctx context.Context, g *Globals, o *saveOptions, refs []string) error {
	format, err := archive.ParseFormat(o.Format)
	if err != nil {
		return usageErrorf("%v", err)
	}
	opts := archive.SaveOptions{Format: format}
	if o.Platform != "" {
		p, err := v1.ParsePlatform(o.Platform)
		if err != nil {
			return usageErrorf("--platform %q: %v", o.Platform, err)
		}
		opts.Platform = p
	}
	s, err := g.Store()
	if err != nil {
		return err
	}
	for _, r := range refs { // fail before creating anything
		if _, err := s.Resolve(r); err != nil {
			return err
		}
	}
	rep := g.Progress()
	tr := rep.Track("save " + o.Output)
	opts.Progress = tr.Set
	if o.Output == "-" {
		err = archive.Save(ctx, g.Out, s, refs, opts)
	} else {
		err = atomicfile.Write(o.Output, 0o644, func(w io.Writer) error { return archive.Save(ctx, w, s, refs, opts) })
	}
	tr.Done(err)
	rep.Wait()
	return err
}

func newLoadCmd(g *Globals) *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load -i FILE",
		Short: "Read images from an archive into the local store",
		Long: `load reads an oci-archive or docker-archive (also gzip- or zstd-compressed)
into the local store. OCI archives stream straight into the store in one
pass. Every blob is verified against its digest; a truncated or corrupted
archive is refused and leaves the store as it was.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if input == "" {
				return usageErrorf("load needs an input file: -i FILE (- for stdin)")
			}
			return runLoad(cmd.Context(), g, input)
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "archive file to read (- for stdin)")
	return cmd
}

func runLoad(ctx context.Context, g *Globals, input string) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	rep := g.Progress()
	tr := rep.Track("load " + input)
	opts := archive.LoadOptions{Progress: tr.Set}
	var entries []store.Entry
	if input == "-" {
		entries, err = archive.Load(ctx, g.In, s, opts)
	} else {
		if _, serr := os.Stat(input); serr != nil {
			tr.Done(serr)
			rep.Wait()
			return serr
		}
		entries, err = archive.LoadFile(ctx, input, s, opts)
	}
	tr.Done(err)
	rep.Wait()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name == "" {
			// An archive entry without a name would be unreachable (and
			// pruned): give it one the user can see and retag.
			e.Name = "localhost/loaded:" + e.Descriptor.Digest.Hex[:12]
			if err := s.Tag(e.Name, e.Descriptor); err != nil {
				return err
			}
		}
		fmt.Fprintf(g.Out, "Loaded image: %s (%s)\n", store.FamiliarName(e.Name), e.Descriptor.Digest)
	}
	return nil
}
