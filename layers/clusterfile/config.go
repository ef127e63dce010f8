package clusterfile

import (
	"path"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/drove-project/drove/protocol"
)

// Config strategies and processors (protocol.ConfigFile.Strategy and
// Process).
const (
	StrategyOverwrite = "overwrite"
	StrategyMerge     = "merge"

	ProcessValue    = "value"
	ProcessToJSON   = "toJson"
	ProcessToBase64 = "toBase64"
	ProcessToSecret = "toSecret"
)

var processors = []string{ProcessValue, ProcessToJSON, ProcessToBase64, ProcessToSecret}

// Application is the sealer.io/v2 Application document: which of the
// image's apps to launch and how.
type Application struct {
	Name       string
	Cmds       []string // raw commands; when set, run instead of launching apps
	LaunchApps []string
	Configs    []AppConfig
	Line       int
}

// AppConfig customises one app of the image.
type AppConfig struct {
	Name       string
	Env        []string // KEY=VALUE, over the cluster env, for this app only
	Files      []AppFile
	LaunchCmds []string // replace the app's launch commands
}

// AppFile changes one file of an app before it is launched.
type AppFile struct {
	Path     string // relative to the app's directory
	Strategy string // StrategyOverwrite or StrategyMerge
	Data     string
}

// config decodes the spec of a Config document.
func (w *walker) config(spec *yaml.Node, field string, line int) (protocol.ConfigFile, bool) {
	var cf protocol.ConfigFile
	var pathGiven, dataGiven bool
	before := len(w.errs)
	_, ok := w.fields(spec, field, map[string]handler{
		"path": func(v *yaml.Node, p string) {
			pathGiven = true
			cf.Path = w.relPath(v, p)
		},
		"appName": func(v *yaml.Node, p string) {
			s, ok := w.str(v, p)
			if ok && s != "" && !isName(s) {
				w.errorf(ErrInvalid, w.line(v), p, "%q is not an app name", s)
				return
			}
			cf.AppName = s
		},
		"data": func(v *yaml.Node, p string) {
			dataGiven = true
			cf.Data, _ = w.str(v, p)
		},
		"strategy": func(v *yaml.Node, p string) { cf.Strategy = w.strategy(v, p) },
		"process": func(v *yaml.Node, p string) {
			s, ok := w.str(v, p)
			if !ok {
				return
			}
			for _, name := range strings.Split(s, "|") {
				name = strings.TrimSpace(name)
				if name == "" {
					continue
				}
				canon := ""
				for _, known := range processors {
					if strings.EqualFold(name, known) {
						canon = known
					}
				}
				if canon == "" {
					w.errorf(ErrInvalid, w.line(v), p, "%q is not a processor: want value, toJson, toBase64 or toSecret, joined with |", name)
					return
				}
				cf.Process = append(cf.Process, canon)
			}
		},
	})
	if !ok {
		return cf, false
	}
	if !pathGiven {
		w.errorf(ErrInvalid, line, join(field, "path"), "missing: the file to write, relative to the image root")
	}
	if !dataGiven {
		w.errorf(ErrInvalid, line, join(field, "data"), "missing: the file's content")
	}
	if cf.Strategy == "" {
		cf.Strategy = StrategyOverwrite
	}
	return cf, len(w.errs) == before
}

// relPath reads a path relative to a root; a leading '/' is dropped with a
// warning (sealer joins it to the root too), ".." out of the root is
// refused.
func (w *walker) relPath(v *yaml.Node, p string) string {
	s, ok := w.str(v, p)
	if !ok {
		return ""
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") {
		w.warnf(w.line(v), p, "%q is read relative to the image root", s)
		s = strings.TrimLeft(s, "/")
	}
	clean := path.Clean(s)
	switch {
	case s == "" || clean == ".":
		w.errorf(ErrInvalid, w.line(v), p, "empty: give a file path")
		return ""
	case clean == ".." || strings.HasPrefix(clean, "../"):
		w.errorf(ErrInvalid, w.line(v), p, "%q leads out of the image root", s)
		return ""
	}
	return clean
}

func (w *walker) strategy(v *yaml.Node, p string) string {
	s, ok := w.str(v, p)
	if !ok {
		return ""
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", StrategyOverwrite:
		return StrategyOverwrite
	case StrategyMerge:
		return StrategyMerge
	}
	w.errorf(ErrInvalid, w.line(v), p, "%q is not a strategy: want overwrite or merge", s)
	return ""
}

// application decodes the spec of an Application document.
func (w *walker) application(spec *yaml.Node, field string, app *Application) {
	w.fields(spec, field, map[string]handler{
		"cmds":       w.setList(&app.Cmds),
		"launchApps": w.setList(&app.LaunchApps),
		"configs": func(v *yaml.Node, p string) {
			items, ok := w.list(v, p)
			if !ok {
				return
			}
			for i, it := range items {
				if c, ok := w.appConfig(it, index(p, i)); ok {
					app.Configs = append(app.Configs, c)
				}
			}
		},
	})
}

func (w *walker) appConfig(n *yaml.Node, field string) (AppConfig, bool) {
	var c AppConfig
	before := len(w.errs)
	_, ok := w.fields(n, field, map[string]handler{
		"name": w.setStr(&c.Name),
		"env":  func(v *yaml.Node, p string) { c.Env = readEnv(w, v, p, false) },
		"files": func(v *yaml.Node, p string) {
			items, ok := w.list(v, p)
			if !ok {
				return
			}
			for i, it := range items {
				fp := index(p, i)
				var f AppFile
				pathGiven := false
				if _, ok := w.fields(it, fp, map[string]handler{
					"path": func(v *yaml.Node, p string) {
						pathGiven = true
						f.Path = w.relPath(v, p)
					},
					"strategy": func(v *yaml.Node, p string) { f.Strategy = w.strategy(v, p) },
					"data":     w.setStr(&f.Data),
				}); !ok {
					return
				}
				if !pathGiven {
					w.errorf(ErrInvalid, w.line(w.resolve(it)), join(fp, "path"), "missing: the file to change, relative to the app's directory")
				}
				if f.Strategy == "" {
					f.Strategy = StrategyOverwrite
				}
				c.Files = append(c.Files, f)
			}
		},
		"launch": func(v *yaml.Node, p string) {
			w.fields(v, p, map[string]handler{"cmds": w.setList(&c.LaunchCmds)})
		},
	})
	if !ok {
		return c, false
	}
	if c.Name == "" {
		w.errorf(ErrInvalid, w.line(w.resolve(n)), join(field, "name"), "missing: the app to configure")
	}
	return c, len(w.errs) == before
}
