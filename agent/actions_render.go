package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/drove-project/drove/layers/render"
	"github.com/drove-project/drove/protocol"
)

// ActionRender is the kind of a RenderAction step.
const ActionRender = "render"

// RenderAction runs "render" steps: it prepares this node's copy of an
// image (Action.Rootfs, delivered by a distribute step) with render.Rootfs:
// the *.tmpl files under etc/, charts/ and manifests/ are rendered with
// Action.Env, then Action.Configs are applied. The coordinator has already
// merged the node's own env (StepSpec.NodeEnv) into Action.Env.
//
// Env values are strings; RenderEnv turns them back into a render.Env
// (lists joined with ";" as render.Env.Entries writes them, or, for
// CertSANs, with spaces as render.Env.Shell does). Running
// the step again gives the same files (templates render from their .tmpl
// source each time). It prints what it rendered and patched.
type RenderAction struct {
	// DataDir is the agent's data directory, where images are unpacked.
	DataDir string
}

// Run implements Action.
func (r RenderAction) Run(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
	if a.Rootfs == "" {
		return 1, nil, errors.New("render: the step names no image (Action.Rootfs)")
	}
	rootfs, err := imageRootfs(r.DataDir, a.Rootfs)
	if err != nil {
		return 1, nil, fmt.Errorf("render: %w", err)
	}
	env, err := RenderEnv(a.Env)
	if err != nil {
		return 1, nil, fmt.Errorf("render image %s: %w", a.Rootfs, err)
	}
	rep, err := render.Rootfs(ctx, rootfs, env, a.Configs)
	if err != nil {
		return 1, nil, fmt.Errorf("render image %s in %s: %w", a.Rootfs, rootfs, err)
	}
	for _, f := range rep.Rendered {
		fmt.Fprintf(out, "rendered %s\n", f)
	}
	for _, f := range rep.Configured {
		fmt.Fprintf(out, "configured %s\n", f)
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
	fmt.Fprintf(out, "%s: %d templates rendered, %d files configured\n", rootfs, len(rep.Rendered), len(rep.Configured))
	return 0, map[string]string{
		"rendered":   fmt.Sprint(len(rep.Rendered)),
		"configured": fmt.Sprint(len(rep.Configured)),
	}, nil
}

// spaceLists are the env keys whose values are lists even when they come
// joined with spaces: their items can never hold a space themselves.
var spaceLists = []string{render.KeyCertSANs}

// RenderEnv reads a step's env (KEY -> value, as render.Env.Shell wrote
// it) back into a render.Env, the way sealer reads env entries
// (render.ParseEnv): a value holding ";" is a list split there. A value of
// a key that is a list of names or addresses (CertSANs) is also split at
// spaces, as Shell joined it. Other values keep their spaces: "a b" of an
// ordinary key cannot be told apart from a two-item list, and a string is
// what sealer's templates expect of it.
func RenderEnv(vars map[string]string) (render.Env, error) {
	entries := make([]string, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if strings.Contains(k, "=") {
			return nil, fmt.Errorf("read the step's env: key %q: %w", k, render.ErrBadEnv)
		}
		entries = append(entries, k+"="+vars[k])
	}
	env, err := render.ParseEnv(entries)
	if err != nil {
		return nil, fmt.Errorf("read the step's env: %w", err)
	}
	for _, k := range spaceLists {
		v, ok := env[k]
		if !ok {
			continue
		}
		var items []string
		for _, item := range v {
			items = append(items, strings.Fields(item)...)
		}
		env[k] = items
	}
	return env, nil
}
