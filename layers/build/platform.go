package build

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/kubefile"
)

// imageState is the image being built for one platform.
type imageState struct {
	platform v1.Platform
	arch     string // for ${ARCH}
	layers   []v1.Descriptor
	diffIDs  []v1.Hash
	history  []v1.History
	config   v1.Config
	baseExt  *extension.ImageExtension
	key      string // cache key of the last layer step (or of the base)
}

func (b *builder) buildPlatform(ctx context.Context, p v1.Platform, res *Result) (platformImage, error) {
	from, err := b.kf.From(b.o.BuildArgs)
	if err != nil {
		return platformImage{}, err
	}
	st, err := b.base(ctx, from, p)
	if err != nil {
		return platformImage{}, b.stepError(from, err)
	}
	var inherited []string
	if st.baseExt != nil {
		inherited = st.baseExt.AppNames()
	}
	if err := b.kf.Validate(inherited); err != nil {
		return platformImage{}, err
	}
	steps, warnings, err := b.kf.Steps(b.o.BuildArgs, st.config.Env)
	if err != nil {
		return platformImage{}, err
	}
	for _, w := range warnings {
		fmt.Fprintf(b.o.Out, "WARNING: %s\n", w)
		res.Warnings = append(res.Warnings, w)
	}
	remote, err := b.fetchRemote(ctx, steps, st.arch)
	if err != nil {
		return platformImage{}, err
	}
	for i, step := range steps {
		fmt.Fprintf(b.o.Out, "[%s] STEP %d/%d: %s\n", p.String(), i+1, len(steps), oneLine(b.kf, step))
		switch step.Cmd {
		case kubefile.From, kubefile.Arg:
		case kubefile.Copy, kubefile.Add:
			err = b.copyStep(ctx, st, step, step.Args[:len(step.Args)-1], step.Args[len(step.Args)-1], remote, res)
		case kubefile.App, kubefile.CNI, kubefile.CSI:
			err = b.copyStep(ctx, st, step, step.Args[1:], extension.AppRoot(step.Args[0]), remote, res)
		case kubefile.Run:
			err = b.runStep(ctx, st, step, res)
		case kubefile.Env:
			for _, kv := range step.Pairs {
				st.config.Env = setEnv(st.config.Env, kv.Key, kv.Value)
			}
			st.history = append(st.history, b.history(step, true))
		default: // LABEL and run-time instructions: extension.Build reads them below
			st.history = append(st.history, b.history(step, true))
		}
		if err != nil {
			return platformImage{}, b.stepError(step, err)
		}
	}
	ext, labels, err := extension.Build(ctx, extension.Input{
		File: b.kf.File, Steps: steps, Context: newContextFS(b.o.Context, remote.dir), Arch: st.arch,
		Remote: remote.contextPaths, Base: st.baseExt, Type: b.o.Type,
	})
	if err != nil {
		return platformImage{}, err
	}
	return b.writeImage(ctx, st, ext, labels)
}

// writeImage stores the config and manifest of a finished platform image.
func (b *builder) writeImage(ctx context.Context, st *imageState, ext *extension.ImageExtension, labels map[string]string) (platformImage, error) {
	if len(labels) > 0 && st.config.Labels == nil {
		st.config.Labels = map[string]string{}
	}
	for k, v := range labels {
		st.config.Labels[k] = v
	}
	annotation, err := ext.Annotation()
	if err != nil {
		return platformImage{}, err
	}
	cfg := v1.ConfigFile{
		Architecture: st.platform.Architecture,
		OS:           st.platform.OS,
		Variant:      st.platform.Variant,
		Created:      v1.Time{Time: b.o.Created},
		Config:       st.config,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: st.diffIDs},
		History:      st.history,
	}
	if cfg.RootFS.DiffIDs == nil {
		cfg.RootFS.DiffIDs = []v1.Hash{}
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return platformImage{}, err
	}
	cfgDigest, err := b.s.PutBytes(ctx, rawCfg)
	if err != nil {
		return platformImage{}, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawCfg)), Digest: cfgDigest},
		Layers:        st.layers,
		Annotations:   map[string]string{extension.AnnotationExtension: annotation},
	}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	rawM, err := json.Marshal(m)
	if err != nil {
		return platformImage{}, err
	}
	h, err := b.s.PutBytes(ctx, rawM)
	if err != nil {
		return platformImage{}, err
	}
	return platformImage{
		desc:     v1.Descriptor{MediaType: types.OCIManifestSchema1, Size: int64(len(rawM)), Digest: h},
		platform: st.platform,
		ext:      annotation,
	}, nil
}

// base reads the FROM image for platform p: scratch, an image in the
// store, or one pulled from its registry (and kept in the store).
func (b *builder) base(ctx context.Context, from kubefile.Step, p v1.Platform) (*imageState, error) {
	if fp := from.Flags["platform"]; fp != "" {
		pp, err := v1.ParsePlatform(fp)
		if err != nil {
			return nil, fmt.Errorf("--platform %q: %w", fp, err)
		}
		p = *pp
	}
	st := &imageState{platform: p, arch: p.Architecture}
	ref := from.Args[0]
	if strings.EqualFold(ref, kubefile.Scratch) {
		st.key = keyOf("scratch", p.String())
		return st, nil
	}
	img, digest, err := b.baseImage(ctx, ref, p)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of %s: %w", ref, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read manifest of %s: %w", ref, err)
	}
	st.layers = append(st.layers, m.Layers...)
	st.diffIDs = append(st.diffIDs, cf.RootFS.DiffIDs...)
	st.history = append(st.history, cf.History...)
	st.config = *cf.Config.DeepCopy()
	if a := m.Annotations[extension.AnnotationExtension]; a != "" {
		if st.baseExt, err = extension.Parse(a); err != nil {
			return nil, fmt.Errorf("base image %s: %w", ref, err)
		}
	}
	st.key = keyOf("base", digest.String(), p.String())
	return st, nil
}

// setEnv sets NAME=value in a config environment list.
func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, k+"=") {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

func (b *builder) history(step kubefile.Step, empty bool) v1.History {
	return v1.History{Created: v1.Time{Time: b.o.Created}, CreatedBy: oneLine(b.kf, step), EmptyLayer: empty,
		Comment: "drove"}
}

// oneLine is the instruction as written, on one line, for output and history.
func oneLine(kf *kubefile.Kubefile, step kubefile.Step) string {
	for _, in := range kf.Instructions {
		if in.Line == step.Line {
			return strings.Join(strings.Fields(in.Raw), " ")
		}
	}
	return step.Cmd
}
