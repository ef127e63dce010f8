package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/layers/store"
)

func newTagCmd(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give a local image another name",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTag(cmd.Context(), g, args[0], args[1])
		},
	}
}

func runTag(_ context.Context, g *Globals, src, dst string) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	e, err := s.Resolve(src)
	if err != nil {
		return err
	}
	return s.Tag(dst, e.Descriptor)
}

type rmiOptions struct {
	Prune bool
	Force bool
}

func newRmiCmd(g *Globals) *cobra.Command {
	o := &rmiOptions{}
	cmd := &cobra.Command{
		Use:   "rmi [IMAGE...]",
		Short: "Remove image names; with --prune, free unreferenced blobs",
		Long: `rmi removes names from the local store. The blobs behind them stay until
they are pruned: --prune removes every blob no remaining name (or build cache
entry) reaches. With --force, names that do not exist are not an error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !o.Prune {
				return usageErrorf("rmi needs an image name, or --prune")
			}
			return runRmi(cmd.Context(), g, o, args)
		},
	}
	cmd.Flags().BoolVarP(&o.Prune, "prune", "p", false, "also remove blobs no image references")
	cmd.Flags().BoolVarP(&o.Force, "force", "f", false, "ignore images that do not exist")
	return cmd
}

func runRmi(_ context.Context, g *Globals, o *rmiOptions, refs []string) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	var errs []error
	for _, ref := range refs {
		err := s.Untag(ref)
		switch {
		case err == nil:
			fmt.Fprintf(g.Out, "Untagged: %s\n", ref)
		case o.Force && errors.Is(err, store.ErrNotFound):
		default:
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if o.Prune {
		keep, err := g.cacheKeeps()
		if err != nil {
			return err
		}
		res, err := s.Prune(keep)
		if err != nil {
			return err
		}
		fmt.Fprintf(g.Out, "Deleted %d blobs, %d bytes\n", len(res.Blobs), res.Bytes)
	}
	return nil
}
