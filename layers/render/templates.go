package render

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/template"
)

// TemplateSuffix marks a file RenderTree renders.
const TemplateSuffix = ".tmpl"

// templateDirs are the rootfs directories whose templates RenderTree
// renders, as sealer does.
var templateDirs = []string{"etc", "charts", "manifests"}

// RenderTree renders every regular *.tmpl file under rootfs's etc/, charts/
// and manifests/ with text/template and writes the result beside it
// without the suffix (atomically, with the template's mode). The data is
// env.TemplateData(): a key's value is a string, or a []string for a list.
// Functions b64enc and b64dec are available. As in sealer, a key env lacks
// renders as "<no value>".
//
// Every template is parsed and executed before anything is written, so a
// bad template (the error names its file and line) changes no file. The
// templates stay in place: running again renders from them afresh.
// rendered lists the written files relative to rootfs, in walk order.
// Symbolic links are not followed out of rootfs.
func RenderTree(ctx context.Context, rootfs string, env Env) (rendered []string, err error) {
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		return nil, fmt.Errorf("render templates: open rootfs: %w", err)
	}
	defer root.Close()
	outs, err := renderAll(ctx, root, env)
	if err != nil {
		return nil, err
	}
	return writeRendered(ctx, root, outs)
}

// renderedFile is one template's output, not yet written.
type renderedFile struct {
	name    string // output, relative to the rootfs
	data    []byte
	mode    fs.FileMode
	missing string // first key the template uses that env lacks
}

// renderAll renders every template under templateDirs in memory.
func renderAll(ctx context.Context, root *os.Root, env Env) ([]renderedFile, error) {
	data := env.TemplateData()
	fsys := root.FS()
	var outs []renderedFile
	for _, top := range templateDirs {
		fi, err := fs.Stat(fsys, top)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && !fi.IsDir()) {
			continue
		}
		if err != nil && isEscape(err) {
			return nil, fmt.Errorf("render templates under %s: %w: %w", top, ErrPathEscape, err)
		}
		if err != nil {
			return nil, fmt.Errorf("render templates under %s: %w", top, err)
		}
		err = fs.WalkDir(fsys, top, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if !d.Type().IsRegular() || !strings.HasSuffix(name, TemplateSuffix) || d.Name() == TemplateSuffix {
				return nil
			}
			out, err := renderOne(fsys, name, data)
			if err != nil {
				return err
			}
			outs = append(outs, out)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("render templates under %s: %w", top, err)
		}
	}
	return outs, nil
}

// renderOne renders the template at name (relative to the rootfs).
func renderOne(fsys fs.FS, name string, data map[string]any) (renderedFile, error) {
	src, err := fs.ReadFile(fsys, name)
	if err != nil {
		return renderedFile{}, fmt.Errorf("read template: %w", err)
	}
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return renderedFile{}, fmt.Errorf("stat template: %w", err)
	}
	// Errors of text/template read "template: NAME:LINE: ...", so naming
	// the template by its rootfs path gives FILE:LINE.
	t, err := template.New(name).Funcs(templateFuncs).Parse(string(src))
	if err != nil {
		return renderedFile{}, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return renderedFile{}, err
	}
	out := renderedFile{
		name: strings.TrimSuffix(name, TemplateSuffix),
		data: buf.Bytes(),
		mode: fi.Mode().Perm(),
	}
	// Execute once more refusing missing keys, only to tell the caller
	// which key rendered as "<no value>".
	if err := t.Option("missingkey=error").Execute(io.Discard, data); err != nil && strings.Contains(err.Error(), "map has no entry for key") {
		out.missing = err.Error()
	}
	return out, nil
}

// writeRendered writes the outputs and returns their names.
func writeRendered(ctx context.Context, root *os.Root, outs []renderedFile) ([]string, error) {
	names := make([]string, 0, len(outs))
	for _, o := range outs {
		if err := ctx.Err(); err != nil {
			return names, fmt.Errorf("write rendered templates: %w", err)
		}
		if _, err := writeFile(root, o.name, o.data, o.mode); err != nil {
			return names, fmt.Errorf("write rendered template: %w", err)
		}
		names = append(names, o.name)
	}
	return names, nil
}

var templateFuncs = template.FuncMap{
	"b64enc": b64enc,
	"b64dec": b64dec,
}

// b64enc is standard base64 of s.
func b64enc(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}

// b64dec decodes standard base64. Sealer rendered the decoder's error
// message into the file; here a bad value fails the template instead.
func b64dec(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("b64dec: %w", err)
	}
	return string(b), nil
}
