package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/layers/extension"
	"github.com/drove-project/drove/layers/render"
	"github.com/drove-project/drove/protocol"
)

// errNoCluster: a Clusterfile holds no Cluster document.
var errNoCluster = errors.New("no Cluster document")

// buildDesired turns a Clusterfile (flags already laid over it) and the
// cluster image into the desired state the runtimes plan from. Env
// precedence is image ENV < cluster env < host env < -e (Override has
// already taken the -e keys off every host).
func buildDesired(ctx context.Context, f *clusterfile.File, img *clusterImage) (runtime.Desired, error) {
	c := f.Cluster
	if c == nil {
		return runtime.Desired{}, fmt.Errorf("%s: %w: add one (kind: Cluster) listing the hosts", f.Name, errNoCluster)
	}
	rt, err := pickRuntime(c, img)
	if err != nil {
		return runtime.Desired{}, err
	}
	env, err := clusterEnv(c, img, rt)
	if err != nil {
		return runtime.Desired{}, err
	}
	d := runtime.Desired{
		Image:           img.Ref,
		ImageDigest:     img.Digest,
		Runtime:         rt,
		KubeVersion:     img.kubeVersion(),
		Env:             flatEnv(env),
		Configs:         slices.Clone(f.Configs),
		CertSANs:        slices.Clone(env[render.KeyCertSANs]),
		ContainerImages: img.ContainerImages,
	}
	if l := c.Registry.Local; l != nil && l.Domain != "" {
		if a := net.JoinHostPort(l.Domain, strconv.Itoa(cmp.Or(l.Port, 5000))); a != runtime.DefaultRegistryAlias {
			d.RegistryAliases = []string{runtime.DefaultRegistryAlias, a}
		}
	}
	if isKube(rt) {
		d.ContainerRuntime = img.Labels[extension.LabelContainerRuntimeType]
	}
	if c.ContainerRuntime != "" {
		d.ContainerRuntime = c.ContainerRuntime
	}
	// Import where the kubelet's images live in containerd: k3s and k0s
	// bring their own, kubeadm clusters when their CRI is containerd (the
	// default, sealer's, is docker). Plain clusters run whatever they run.
	d.ImportImages = rt == clusterfile.RuntimeK3s || rt == clusterfile.RuntimeK0s ||
		(rt == clusterfile.RuntimeKubernetes && d.ContainerRuntime == "containerd")
	if d.Hosts, err = desiredHosts(f); err != nil {
		return runtime.Desired{}, err
	}
	for _, a := range c.HostAliases {
		d.HostAliases = append(d.HostAliases, runtime.HostAlias{IP: a.IP, Hostnames: slices.Clone(a.Hostnames)})
	}
	if app := f.Application; app != nil {
		for _, ac := range app.Configs {
			for _, af := range ac.Files {
				d.Configs = append(d.Configs, protocol.ConfigFile{Path: af.Path, AppName: ac.Name, Data: af.Data, Strategy: af.Strategy})
			}
		}
	}
	if d.Cmds, err = launchCmds(f, img); err != nil {
		return runtime.Desired{}, err
	}
	if d.Hooks, err = desiredHooks(f, img); err != nil {
		return runtime.Desired{}, err
	}
	if name, text := img.kubeadmDefault(); text != nil {
		if d.KubeadmDefault, err = renderText(ctx, name, text, env); err != nil {
			return runtime.Desired{}, fmt.Errorf("image %s: %w", img.Ref, err)
		}
	}
	for _, k := range f.Kubeadm {
		d.KubeadmDocs = append(d.KubeadmDocs, slices.Clone(k.Data))
	}
	return d, nil
}

// pickRuntime: the Clusterfile's spec.runtime, else the image's
// cluster-runtime label (or Gen-1 Metadata), else kubernetes when the
// image carries kubeadm, else plain.
func pickRuntime(c *clusterfile.Cluster, img *clusterImage) (string, error) {
	rt, from := c.Runtime, "spec.runtime"
	if rt == "" {
		rt, from = img.Labels[extension.LabelClusterRuntimeType], "image label "+extension.LabelClusterRuntimeType
	}
	if rt == "" {
		rt, from = strings.ToLower(img.metadata().ClusterRuntime), "image Metadata"
	}
	if rt == "" {
		rt = clusterfile.RuntimePlain
		if img.Has["bin/kubeadm"] {
			rt = clusterfile.RuntimeKubernetes
		}
		return rt, nil
	}
	if _, err := runtime.Lookup(rt); err != nil {
		return "", fmt.Errorf("%s: %w", from, err)
	}
	return rt, nil
}

func isKube(rt string) bool { return rt != clusterfile.RuntimePlain }

// clusterEnv is the cluster-wide env: image ENV < spec.env (which holds
// the -e values). Kubernetes runtimes get sealer's derived keys too.
func clusterEnv(c *clusterfile.Cluster, img *clusterImage, rt string) (render.Env, error) {
	imageEnv, err := render.ParseEnv(img.Env)
	if err != nil {
		return nil, fmt.Errorf("image %s ENV: %w", img.Ref, err)
	}
	ce, err := render.ParseEnv(c.Env)
	if err != nil {
		return nil, fmt.Errorf("spec.env: %w", err)
	}
	env := render.Merge(imageEnv, ce)
	if isKube(rt) {
		if env, err = render.Derive(env); err != nil {
			return nil, fmt.Errorf("env: %w", err)
		}
	}
	return env, nil
}

// flatEnv is env as step variables: a list is joined with ";", the form
// render.ParseEnv reads back into the same list.
func flatEnv(env render.Env) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, vs := range env {
		out[k] = strings.Join(vs, ";")
	}
	return out
}

// desiredHosts expands every hosts[] entry into one Host per address.
func desiredHosts(f *clusterfile.File) ([]runtime.Host, error) {
	var out []runtime.Host
	for _, h := range f.Cluster.Hosts {
		env, err := render.ParseEnv(h.Env)
		if err != nil {
			return nil, fmt.Errorf("%s: hosts env: %w", source(f.Name, h.Line), err)
		}
		for _, ip := range h.IPs {
			out = append(out, runtime.Host{
				IP: ip, Roles: slices.Clone(h.Roles), Env: flatEnv(env),
				Labels: maps.Clone(h.Labels), Taints: slices.Clone(h.Taints),
				Source: source(f.Name, h.Line),
			})
		}
	}
	return out, nil
}

// source names where something was declared: "FILE:LINE", or "command
// line" for what came from flags.
func source(file string, line int) string {
	switch {
	case line > 0 && file != "":
		return fmt.Sprintf("%s:%d", file, line)
	case file != "":
		return file
	}
	return "command line"
}

// launchCmds are the commands run on master0 at the end of an install,
// as sealer picks them: spec.cmd, else the Application's cmds, else the
// launch commands of the apps spec.appNames (or the Application's
// launchApps) name, else the image's own CMDS/LAUNCH.
func launchCmds(f *clusterfile.File, img *clusterImage) ([]string, error) {
	c, app := f.Cluster, f.Application
	if len(c.Cmds) > 0 {
		return slices.Clone(c.Cmds), nil
	}
	if app != nil && len(app.Cmds) > 0 {
		return slices.Clone(app.Cmds), nil
	}
	names, set := c.AppNames, c.AppNames != nil
	if !set && app != nil && len(app.LaunchApps) > 0 {
		names, set = app.LaunchApps, true
	}
	if !set {
		if img.Ext == nil {
			return nil, nil
		}
		return expandCmdArgs(img.Ext.LaunchCmds(), c.CmdArgs), nil
	}
	var out []string
	for _, name := range names {
		var a *extension.Application
		if img.Ext != nil {
			a = img.Ext.App(name)
		}
		if a == nil {
			var have []string
			if img.Ext != nil {
				have = img.Ext.AppNames()
			}
			return nil, fmt.Errorf("app %q is not in image %s (it has: %s): fix --apps or appNames", name, img.Ref, orNone(strings.Join(have, ", ")))
		}
		launch := *a
		var env map[string]string
		if app != nil {
			for _, ac := range app.Configs {
				if ac.Name != name {
					continue
				}
				if len(ac.LaunchCmds) > 0 {
					launch.Cmds = ac.LaunchCmds
				}
				env = lastValues(ac.Env)
			}
		}
		cmd := launch.LaunchCmd(extension.AppRoot(name))
		if cmd == "" {
			return nil, fmt.Errorf("app %q of image %s has no launch command: give it one in the Application's configs", name, img.Ref)
		}
		out = append(out, exportPrefix(mergeMaps(a.Env, env))+cmd)
	}
	return out, nil
}

// mergeMaps returns b over a.
func mergeMaps(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, b)
	return out
}

// lastValues reads KEY=VALUE entries; a repeated key keeps its last value.
func lastValues(env []string) map[string]string {
	out := map[string]string{}
	for k, vs := range clusterfile.EnvMap(env) {
		out[k] = vs[len(vs)-1]
	}
	return out
}

// exportPrefix exports env for the command that follows.
func exportPrefix(env map[string]string) string {
	if len(env) == 0 {
		return ""
	}
	var b strings.Builder
	for _, k := range sortedKeys(env) {
		fmt.Fprintf(&b, "export %s=%s; ", k, shQuote(env[k]))
	}
	return b.String()
}

// shQuote quotes s for sh.
func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

var cmdArgRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandCmdArgs substitutes Gen-1 spec.cmd_args (KEY=VALUE) for ${KEY} in
// the image's commands; other references are left to the shell.
func expandCmdArgs(cmds, args []string) []string {
	if len(args) == 0 {
		return cmds
	}
	vals := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			vals[k] = v
		}
	}
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = cmdArgRef.ReplaceAllStringFunc(c, func(ref string) string {
			if v, ok := vals[ref[2:len(ref)-1]]; ok {
				return v
			}
			return ref
		})
	}
	return out
}

// desiredHooks are the Clusterfile's Plugin documents and the image's
// plugins/*.yaml; a Clusterfile plugin replaces an image plugin of the
// same name.
func desiredHooks(f *clusterfile.File, img *clusterImage) ([]runtime.Hook, error) {
	var hooks []runtime.Hook
	for _, p := range img.pluginFiles() {
		name := img.Ref + ":" + p
		pf, err := clusterfile.Parse(name, img.Files[p])
		if err != nil {
			return nil, fmt.Errorf("image plugin: %w", err)
		}
		for _, pl := range pf.Plugins {
			hooks = append(hooks, hookOf(pl, name))
		}
	}
	for _, pl := range f.Plugins {
		h := hookOf(pl, f.Name)
		hooks = slices.DeleteFunc(hooks, func(o runtime.Hook) bool { return o.Name == h.Name })
		hooks = append(hooks, h)
	}
	return hooks, nil
}

func hookOf(p clusterfile.Plugin, file string) runtime.Hook {
	h := runtime.Hook{Name: p.Name, Type: p.Type, Phase: strings.Join(p.Phases, "|"), Data: p.Data, Source: source(file, p.Line)}
	switch {
	case p.BackupPath != "":
		h.On = p.BackupPath
	case len(p.On.Roles) > 0:
		h.On = strings.Join(p.On.Roles, "|")
	case len(p.On.IPs) > 0:
		h.On = strings.Join(p.On.IPs, ",")
	default:
		h.On = p.On.Selector
	}
	return h
}

// renderText renders one template file of the image (name, for errors)
// with env, as the nodes render the rootfs.
func renderText(ctx context.Context, name string, text []byte, env render.Env) ([]byte, error) {
	dir, err := os.MkdirTemp("", "drove-render-")
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	defer os.RemoveAll(dir)
	base := strings.TrimSuffix(filepath.Base(name), render.TemplateSuffix)
	tmpl := filepath.Join(dir, "etc", base+render.TemplateSuffix)
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o700); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	if err := os.WriteFile(tmpl, text, 0o600); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	if _, err := render.RenderTree(ctx, dir, env); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	out, err := os.ReadFile(filepath.Join(dir, "etc", base))
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return out, nil
}

// kubeVersion is the Kubernetes version the image installs: its
// KUBEVERSION label when that names one version (not a range), else the
// Gen-1 Metadata's kubeVersion.
func (img *clusterImage) kubeVersion() string {
	if v := strings.TrimLeft(strings.TrimSpace(img.Labels[extension.LabelSupportedKubeVersion]), "="); plainVersion.MatchString(v) {
		return v
	}
	return img.metadata().KubeVersion
}

var plainVersion = regexp.MustCompile(`^v?[0-9]+\.[0-9]+(\.[0-9]+)?([-+][0-9A-Za-z.+-]*)?$`)
