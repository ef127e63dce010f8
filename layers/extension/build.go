package extension

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/drove-project/drove/internal/version"
	"github.com/drove-project/drove/layers/kubefile"
)

// ErrUnknownAppType is returned by Build for an app whose type is not
// detected and that has no APPCMDS.
var ErrUnknownAppType = errors.New("app type not detected (helm, kube or shell) and no APPCMDS given")

// Input is what Build needs to describe a new image.
type Input struct {
	// File names the Kubefile in error messages.
	File string
	// Steps are the expanded steps of the Kubefile (kubefile.Steps). Build
	// reads ENV, LABEL, APP, CNI, CSI, APPCMDS, APPENV, LAUNCH, CMDS, CMD and
	// KUBEVERSION and ignores the rest.
	Steps []kubefile.Step
	// Context is the build context; local:// sources are paths in it.
	Context fs.FS
	// Arch resolves ${ARCH} in sources (kubefile.ResolveArch), e.g. "amd64".
	Arch string
	// Remote maps each http(s):// source (after ${ARCH} resolution) to the
	// path in Context where the builder downloaded it, named after the last
	// element of the URL path as sealer does.
	Remote map[string]string
	// Base is the base image's extension; nil for scratch or a base that
	// is not a sealer image.
	Base *ImageExtension
	// Type is KubeInstaller or AppInstaller.
	Type string
	// Version goes into BuildClient.SealerVersion; empty means drove's
	// own version.
	Version string
}

// Build returns the extension of the image built from in.Steps on top of
// in.Base, and the labels the Kubefile adds to the image config (LABEL,
// CNI, CSI and KUBEVERSION, later ones winning), which the builder lays
// over the base image's labels.
//
// As sealer does: applications are the base's plus the Kubefile's, an APP
// of the same name replacing the inherited one; APPCMDS and APPENV (all of
// a Kubefile's APPENV for one app together) replace those of the app they
// name; Launch comes from this Kubefile only. Unlike sealer, which keeps
// only this Kubefile's ENV, Env is the base's env overlaid with ENV, like
// the image config's environment.
func Build(ctx context.Context, in Input) (*ImageExtension, map[string]string, error) {
	if in.Type != KubeInstaller && in.Type != AppInstaller {
		return nil, nil, fmt.Errorf("image type %q: want %s or %s", in.Type, KubeInstaller, AppInstaller)
	}
	v := in.Version
	if v == "" {
		v = version.String()
	}
	ext := &ImageExtension{
		BuildClient:   BuildClient{SealerVersion: v},
		SchemaVersion: SchemaVersion,
		Type:          in.Type,
	}
	if in.Base != nil {
		for _, a := range in.Base.Applications {
			ext.Applications = append(ext.Applications, a.clone())
		}
		for k, val := range in.Base.Env {
			setEnv(&ext.Env, k, val)
		}
	}
	labels := map[string]string{}
	appEnv := map[string]map[string]string{}
	declared := map[string]int{} // app name -> line of its APP, CNI or CSI
	for _, st := range in.Steps {
		fail := func(err error) (*ImageExtension, map[string]string, error) {
			return nil, nil, fmt.Errorf("%s:%d: %s: %w", in.File, st.Line, st.Cmd, err)
		}
		switch st.Cmd {
		case kubefile.Env:
			for _, p := range st.Pairs {
				setEnv(&ext.Env, p.Key, p.Value)
			}
		case kubefile.Label:
			for _, p := range st.Pairs {
				labels[p.Key] = p.Value
			}
		case kubefile.App, kubefile.CNI, kubefile.CSI:
			app, err := in.app(ctx, st.Args[0], st.Args[1:])
			if err != nil {
				return fail(err)
			}
			ext.put(app)
			declared[app.Name] = st.Line
			switch st.Cmd {
			case kubefile.CNI:
				labels[LabelKubeCNI(app.Name)] = "true"
			case kubefile.CSI:
				labels[LabelKubeCSI(app.Name)] = "true"
			}
		case kubefile.AppCmds:
			app := ext.App(st.Args[0])
			if app == nil {
				return fail(fmt.Errorf("no app %q", st.Args[0]))
			}
			app.Cmds = append([]string(nil), st.Args[1:]...)
		case kubefile.AppEnv:
			if ext.App(st.Args[0]) == nil {
				return fail(fmt.Errorf("no app %q", st.Args[0]))
			}
			if appEnv[st.Args[0]] == nil {
				appEnv[st.Args[0]] = map[string]string{}
			}
			for _, p := range st.Pairs {
				appEnv[st.Args[0]][p.Key] = p.Value
			}
		case kubefile.Launch:
			for _, name := range st.Args {
				if ext.App(name) == nil {
					return fail(fmt.Errorf("no app %q", name))
				}
			}
			ext.Launch.AppNames = append([]string(nil), st.Args...)
		case kubefile.Cmds:
			ext.Launch.Cmds = append(ext.Launch.Cmds, st.Args...)
		case kubefile.Cmd:
			ext.Launch.Cmds = append(ext.Launch.Cmds, strings.Join(st.Args, " "))
		case kubefile.KubeVersion:
			labels[LabelSupportedKubeVersion] = st.Args[0]
		}
	}
	for name, env := range appEnv {
		ext.App(name).Env = env
	}
	for _, a := range ext.Applications {
		if a.Type != "" || len(a.Cmds) > 0 {
			continue
		}
		if line, ok := declared[a.Name]; ok {
			return nil, nil, fmt.Errorf("%s:%d: app %q: %w", in.File, line, a.Name, ErrUnknownAppType)
		}
		return nil, nil, fmt.Errorf("%s: app %q of the base image: %w", in.File, a.Name, ErrUnknownAppType)
	}
	return ext, labels, nil
}

func setEnv(env *map[string]string, k, v string) {
	if *env == nil {
		*env = map[string]string{}
	}
	(*env)[k] = v
}

// put adds app, or replaces the application of the same name in place.
func (e *ImageExtension) put(app *Application) {
	for i, a := range e.Applications {
		if a.Name == app.Name {
			e.Applications[i] = app
			return
		}
	}
	e.Applications = append(e.Applications, app)
}

// app detects the app declared with sources.
func (in *Input) app(ctx context.Context, name string, sources []string) (*Application, error) {
	if in.Context == nil {
		return nil, errors.New("no build context")
	}
	paths, err := in.SourcePaths(sources)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", name, err)
	}
	return DetectApp(ctx, in.Context, name, paths)
}

// SourcePaths maps the sources of an APP, CNI or CSI step to paths in
// in.Context: ${ARCH} resolved with in.Arch, local:// taken off, remote URLs
// looked up in in.Remote. The builder copies these paths into
// AppRoot(name) as COPY does (a directory's content, a file by its name).
func (in *Input) SourcePaths(sources []string) ([]string, error) {
	paths := make([]string, 0, len(sources))
	for _, src := range sources {
		src = kubefile.ResolveArch(src, in.Arch)
		p, ok := kubefile.LocalPath(src)
		if !ok {
			if p, ok = in.Remote[src]; !ok {
				return nil, fmt.Errorf("remote source %s was not fetched", src)
			}
		}
		clean, err := contextPath(p)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		paths = append(paths, clean)
	}
	return paths, nil
}

// contextPath turns a source path into a path in the build context FS.
func contextPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return "", errors.New("must be relative to the build context")
	}
	clean := path.Clean(p)
	if !fs.ValidPath(clean) {
		return "", errors.New("leaves the build context")
	}
	return clean, nil
}
