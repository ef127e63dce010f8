package extension

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// DetectApp describes the app that APP, CNI or CSI name declares with
// sources, which are paths in fsys (the build context): its type
// (DetectType) and its launch files. Version is AppVersion.
func DetectApp(ctx context.Context, fsys fs.FS, name string, sources []string) (*Application, error) {
	typ, err := DetectType(ctx, fsys, sources)
	if err != nil {
		return nil, fmt.Errorf("detect type of app %s: %w", name, err)
	}
	files, err := launchFiles(ctx, fsys, name, typ, sources)
	if err != nil {
		return nil, fmt.Errorf("list files of app %s: %w", name, err)
	}
	return &Application{Name: name, Type: typ, Files: files, Version: AppVersion}, nil
}

// DetectType tells an app's type from its sources (paths in fsys) as sealer
// does:
//
//   - AppTypeHelm if a source is a directory holding Chart.yaml,
//     values.yaml and templates;
//   - otherwise, over every file of every source (directories walked),
//     AppTypeKube if all are .yaml or .yml, AppTypeShell if all are .sh;
//   - otherwise "": unknown, and the app needs APPCMDS.
func DetectType(ctx context.Context, fsys fs.FS, sources []string) (string, error) {
	for _, src := range sources {
		fi, err := fs.Stat(fsys, src)
		if err != nil {
			return "", err // a *fs.PathError: "stat <src>: ..."
		}
		if fi.IsDir() && isChart(fsys, src) {
			return AppTypeHelm, nil
		}
	}
	var kube, shell, other bool
	for _, src := range sources {
		err := walkFiles(ctx, fsys, src, func(p string) error {
			switch strings.ToLower(path.Ext(p)) {
			case ".yaml", ".yml":
				kube = true
			case ".sh":
				shell = true
			default:
				other = true
				return fs.SkipAll
			}
			return nil
		})
		if err != nil {
			return "", err
		}
		if other {
			return "", nil
		}
	}
	switch {
	case kube && !shell:
		return AppTypeKube, nil
	case shell && !kube:
		return AppTypeShell, nil
	}
	return "", nil
}

// isChart reports whether dir holds Chart.yaml, values.yaml and templates.
func isChart(fsys fs.FS, dir string) bool {
	for _, name := range []string{"Chart.yaml", "values.yaml", "templates"} {
		if _, err := fs.Stat(fsys, path.Join(dir, name)); err != nil {
			return false
		}
	}
	return true
}

// launchFiles lists an app's launch files relative to its root, as sealer
// does: the app name for helm; nothing for an unknown type; otherwise every
// file of the sources (a file source by its base name, a directory's files
// by their path inside it, since COPY puts a directory's content into the
// app root), and for shell only those of the first source.
func launchFiles(ctx context.Context, fsys fs.FS, name, typ string, sources []string) ([]string, error) {
	switch typ {
	case "":
		return nil, nil
	case AppTypeHelm:
		return []string{name}, nil
	}
	var files []string
	for _, src := range sources {
		err := walkFiles(ctx, fsys, src, func(p string) error {
			switch {
			case p == src:
				files = append(files, path.Base(p))
			case src == ".":
				files = append(files, p)
			default:
				files = append(files, strings.TrimPrefix(p, src+"/"))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if typ == AppTypeShell {
			break
		}
	}
	return files, nil
}

// walkFiles calls fn for src if it is a file, or for every non-directory
// under src, in lexical order. fn may return fs.SkipAll to stop.
func walkFiles(ctx context.Context, fsys fs.FS, src string, fn func(p string) error) error {
	err := fs.WalkDir(fsys, src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		return fn(p)
	})
	if err != nil && !errors.Is(err, fs.SkipAll) {
		return fmt.Errorf("walk %s: %w", src, err)
	}
	return nil
}
