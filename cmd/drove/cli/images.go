package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/store"
)

type imagesOptions struct {
	Quiet   bool
	Digests bool
	Output  string
}

func newImagesCmd(g *Globals) *cobra.Command {
	o := &imagesOptions{}
	cmd := &cobra.Command{
		Use:   "images",
		Short: "List the cluster images in the local store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(o.Output); err != nil {
				return err
			}
			return runImages(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print image IDs only")
	f.BoolVar(&o.Digests, "digests", false, "show full digests")
	f.StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// imageListItem is one row of `drove images -o json`.
type imageListItem struct {
	Name      string    `json:"name"`
	Digest    string    `json:"digest"`
	MediaType string    `json:"mediaType"`
	Platforms []string  `json:"platforms"`
	Size      int64     `json:"size"`
	Created   time.Time `json:"created"`
}

func runImages(_ context.Context, g *Globals, o *imagesOptions) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	entries, err := s.List()
	if err != nil {
		return err
	}
	items := make([]imageListItem, 0, len(entries))
	for _, e := range entries {
		sum, err := s.Summarize(e.Descriptor)
		if err != nil {
			return fmt.Errorf("read image %s: %w", e.Name, err)
		}
		items = append(items, imageListItem{Name: e.Name, Digest: e.Descriptor.Digest.String(),
			MediaType: sum.MediaType, Platforms: sum.Platforms, Size: sum.Size, Created: sum.Created})
	}
	if o.Quiet {
		seen := map[string]bool{}
		for _, it := range items {
			id := shortID(it.Digest)
			if !seen[id] {
				seen[id] = true
				fmt.Fprintln(g.Out, id)
			}
		}
		return nil
	}
	if o.Output != "table" && o.Output != "" {
		return writeStructured(g.Out, o.Output, items)
	}
	tw := tabwriter.NewWriter(g.Out, 0, 4, 3, ' ', 0)
	header := "REPOSITORY\tTAG\tIMAGE ID\tPLATFORMS\tCREATED\tSIZE"
	if o.Digests {
		header = "REPOSITORY\tTAG\tDIGEST\tIMAGE ID\tPLATFORMS\tCREATED\tSIZE"
	}
	fmt.Fprintln(tw, header)
	now := time.Now()
	for _, it := range items {
		repo, tag := splitName(store.FamiliarName(it.Name))
		cols := []string{repo, tag}
		if o.Digests {
			cols = append(cols, it.Digest)
		}
		cols = append(cols, shortID(it.Digest), strings.Join(it.Platforms, ","), since(it.Created, now), progress.HumanBytes(it.Size))
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	return tw.Flush()
}

// shortID is the 12 hex digits docker shows as an image ID.
func shortID(digest string) string {
	h := strings.TrimPrefix(digest, "sha256:")
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func splitName(n string) (repo, tag string) {
	if i := strings.LastIndex(n, ":"); i > strings.LastIndex(n, "/") {
		return n[:i], n[i+1:]
	}
	return n, "<none>"
}
