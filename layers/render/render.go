package render

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/drove-project/drove/protocol"
)

// Report says what Rootfs did.
type Report struct {
	// Rendered are the files written from templates, relative to the
	// rootfs.
	Rendered []string `json:"rendered,omitempty"`
	// Configured are the files Configs wrote, relative to the rootfs.
	Configured []string `json:"configured,omitempty"`
	// Warnings are things that worked but are likely mistakes: a template
	// using a key env lacks (rendered as "<no value>", as sealer does).
	Warnings []string `json:"warnings,omitempty"`
}

// Rootfs prepares an unpacked image root filesystem for use on a node:
// it renders the templates (RenderTree) and then applies the Configs
// (ApplyConfigs), so a Config can patch a rendered file.
//
// All templates and Configs are computed in memory before anything is
// written: a bad template or Config changes no file. Running Rootfs again
// gives the same files, since templates render from their .tmpl source and
// the Configs then apply to that fresh output.
func Rootfs(ctx context.Context, rootfs string, env Env, configs []protocol.ConfigFile) (Report, error) {
	var rep Report
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return rep, fmt.Errorf("render rootfs: %w", err)
	}
	defer root.Close()

	outs, err := renderAll(ctx, root, env)
	if err != nil {
		return rep, fmt.Errorf("render rootfs: %w", err)
	}
	var files fileSet
	var rendered []string
	for _, o := range outs {
		files.set(o.name, &pendingFile{data: o.data, mode: o.mode})
		rendered = append(rendered, o.name)
		if o.missing != "" {
			rep.Warnings = append(rep.Warnings, o.missing)
		}
	}
	if err := files.configure(ctx, root, configs); err != nil {
		return rep, fmt.Errorf("render rootfs: %w", err)
	}
	if err := files.write(ctx, root); err != nil {
		return rep, fmt.Errorf("render rootfs: %w", err)
	}
	rep.Rendered = rendered
	// Configured: every file a Config touched, rendered ones included.
	for _, cfg := range configs {
		name, _ := configTarget(cfg) // checked by configure
		if !slices.Contains(rep.Configured, name) {
			rep.Configured = append(rep.Configured, name)
		}
	}
	return rep, nil
}
