package cli

import (
	"context"
	"encoding/json"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/drove-project/drove/layers/extension"
)

func newInspectCmd(g *Globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's index or manifest, config and sealer metadata as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "json" && output != "yaml" {
				return usageErrorf("unknown output format %q: use json or yaml", output)
			}
			return runInspect(cmd.Context(), g, args[0], output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	return cmd
}

// inspectResult is the document `drove inspect` prints.
type inspectResult struct {
	Name            string            `json:"name"`
	Digest          string            `json:"digest"`
	MediaType       string            `json:"mediaType"`
	Size            int64             `json:"size"`
	Index           *v1.IndexManifest `json:"index,omitempty"`
	Images          []inspectedImage  `json:"images"`
	Extension       json.RawMessage   `json:"sealerExtension,omitempty"`
	ContainerImages []json.RawMessage `json:"containerImages,omitempty"`
}

type inspectedImage struct {
	Platform string         `json:"platform"`
	Digest   string         `json:"digest"`
	Manifest *v1.Manifest   `json:"manifest"`
	Config   *v1.ConfigFile `json:"config"`
}

func runInspect(_ context.Context, g *Globals, ref, output string) error {
	s, err := g.Store()
	if err != nil {
		return err
	}
	e, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	sum, err := s.Summarize(e.Descriptor)
	if err != nil {
		return err
	}
	res := inspectResult{Name: e.Name, Digest: sum.Digest.String(), MediaType: sum.MediaType, Size: sum.Size, Images: []inspectedImage{}}
	if e.Descriptor.MediaType.IsIndex() {
		idx, err := s.Index(e.Descriptor.Digest)
		if err != nil {
			return err
		}
		if res.Index, err = idx.IndexManifest(); err != nil {
			return err
		}
	}
	for _, m := range sum.Manifests {
		res.Images = append(res.Images, inspectedImage{Platform: m.Platform, Digest: m.Digest.String(), Manifest: m.Manifest, Config: m.Config})
		if res.Extension == nil {
			if a := m.Manifest.Annotations[extension.AnnotationExtension]; json.Valid([]byte(a)) {
				res.Extension = json.RawMessage(a)
			}
		}
		if res.ContainerImages == nil {
			var list []json.RawMessage
			if json.Unmarshal([]byte(m.Manifest.Annotations[extension.AnnotationContainerImages]), &list) == nil {
				res.ContainerImages = list
			}
		}
	}
	return writeStructured(g.Out, output, res)
}
