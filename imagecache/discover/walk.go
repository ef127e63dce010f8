package discover

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/drove-project/drove/layers/extension"
)

// Names in the rootfs.
const (
	containerImagesDir = "container-images" // the cached images themselves: never read
	manifestsDir       = "manifests"
	chartsDir          = "charts"
	imageListName      = "imageList"
	chartFile          = "Chart.yaml"
)

// maxSymlinkDepth bounds how many directory symlinks deep a chart is
// checked.
const maxSymlinkDepth = 8

// walkRootfs reads the sources inside the rootfs. It returns only errors
// that stop the walk (the rootfs cannot be opened, ctx ends); problems in
// files are recorded in d.errs.
func (d *discoverer) walkRootfs() error {
	root, err := os.OpenRoot(d.rootfs)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	fsys := root.FS()
	chart := "" // the chart directory being walked through, if any
	err = fs.WalkDir(fsys, ".", func(p string, de fs.DirEntry, err error) error {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			if p == "." {
				return fmt.Errorf("read rootfs: %w", err)
			}
			d.errs.add(fmt.Errorf("read rootfs %s: %w", d.rootfs, err))
			return nil
		}
		if chart != "" && !within(p, chart) {
			chart = ""
		}
		if de.IsDir() {
			if p == containerImagesDir {
				return fs.SkipDir
			}
			if chart == "" && inChartArea(p) && isChart(fsys, p) {
				chart = p
				d.chart(fsys, p)
			}
			return nil
		}
		switch {
		case de.Name() == imageListName:
			d.rootfsImageList(fsys, p, de)
		case chart == "" && inManifestArea(p) && isYAML(p):
			d.manifest(fsys, p, de)
		}
		return nil
	})
	if err != nil {
		if ctxErr := d.ctx.Err(); ctxErr != nil && errors.Is(err, ctxErr) {
			return err
		}
		return fmt.Errorf("find container images in %s: %w", d.rootfs, err)
	}
	return nil
}

// rootfsImageList reads an imageList file of the rootfs.
func (d *discoverer) rootfsImageList(fsys fs.FS, p string, de fs.DirEntry) {
	data, ok := d.readFile(fsys, p, de)
	if !ok {
		return
	}
	entries, err := ParseImageList(data, p)
	if err != nil {
		d.errs.add(err)
		return
	}
	app := appName(p)
	for _, e := range entries {
		d.add(e.Ref, app, p+":"+strconv.Itoa(e.Line))
	}
	d.log.Debug("read image list", "file", p, "images", len(entries))
}

// manifest reads a YAML file of the rootfs.
func (d *discoverer) manifest(fsys fs.FS, p string, de fs.DirEntry) {
	data, ok := d.readFile(fsys, p, de)
	if !ok {
		return
	}
	found, err := ManifestImages(data, p)
	if err != nil {
		d.errs.add(err)
		return
	}
	app := appName(p)
	for _, f := range found {
		where := p + ":" + strconv.Itoa(f.Line)
		d.addField(f.Ref, app, where, where)
	}
	d.log.Debug("read manifest", "file", p, "images", len(found))
}

// chart renders the Helm chart in directory p of the rootfs.
func (d *discoverer) chart(fsys fs.FS, p string) {
	if err := checkSymlinks(fsys, p, 0); err != nil {
		d.errs.add(&Error{File: p, Msg: "helm chart not read: " + err.Error(), Err: ErrChart})
		return
	}
	found, err := chartImages(d.ctx, filepath.Join(d.rootfs, filepath.FromSlash(p)), p)
	if err != nil {
		d.errs.add(err)
		return
	}
	source := p + " (helm, default values)"
	app := appName(p)
	for _, f := range found {
		d.addField(f.Ref, app, source, source+": "+f.Template+":"+strconv.Itoa(f.Line))
	}
	d.log.Debug("rendered helm chart", "chart", p, "images", len(found))
}

// readFile reads a regular file of the rootfs. A symlink that leads out of
// the rootfs, or to something other than a regular file, is skipped with a
// warning; other failures are errors.
func (d *discoverer) readFile(fsys fs.FS, p string, de fs.DirEntry) ([]byte, bool) {
	info, err := fs.Stat(fsys, p)
	if err != nil {
		if de.Type()&fs.ModeSymlink != 0 {
			d.warnf("%s: skipped: a symlink that does not lead to a file inside the rootfs", p)
			return nil, false
		}
		d.errs.add(fmt.Errorf("read %s: %w", p, err))
		return nil, false
	}
	if !info.Mode().IsRegular() {
		d.warnf("%s: skipped: not a regular file", p)
		return nil, false
	}
	data, err := fs.ReadFile(fsys, p)
	if err != nil {
		d.errs.add(fmt.Errorf("read %s: %w", p, err))
		return nil, false
	}
	return data, true
}

// checkSymlinks fails if a symlink under dir leads out of fsys: helm
// follows symlinks when it loads a chart, and must read nothing of the
// build host. Directory symlinks are checked through, depth levels deep.
func checkSymlinks(fsys fs.FS, dir string, depth int) error {
	if depth > maxSymlinkDepth {
		return fmt.Errorf("%s: more than %d directory symlinks deep", dir, maxSymlinkDepth)
	}
	return fs.WalkDir(fsys, dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		info, err := fs.Stat(fsys, p)
		if err != nil {
			return fmt.Errorf("%s: a symlink that does not lead inside the rootfs", p)
		}
		if info.IsDir() {
			return checkSymlinks(fsys, p, depth+1)
		}
		return nil
	})
}

// isChart reports whether directory p holds a Chart.yaml.
func isChart(fsys fs.FS, p string) bool {
	_, err := fs.Stat(fsys, path.Join(p, chartFile))
	return err == nil
}

// inChartArea reports whether directory p is where Helm charts are looked
// for: charts/, manifests/ or an app's directory, or below them.
func inChartArea(p string) bool {
	return p == chartsDir || within(p, chartsDir) ||
		p == manifestsDir || within(p, manifestsDir) ||
		appName(p+"/") != ""
}

// inManifestArea reports whether file p is where YAML manifests are looked
// for: under manifests/ or an app's directory.
func inManifestArea(p string) bool {
	return within(p, manifestsDir) || appName(p) != ""
}

// appName returns the app whose directory (extension.AppRoot) file p is
// in, or "".
func appName(p string) string {
	rest, ok := strings.CutPrefix(p, extension.AppsDir+"/")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return ""
	}
	return name
}

// within reports whether p is strictly below directory dir.
func within(p, dir string) bool {
	return strings.HasPrefix(p, dir+"/")
}

// isYAML reports whether p names a YAML file.
func isYAML(p string) bool {
	switch strings.ToLower(path.Ext(p)) {
	case ".yaml", ".yml":
		return true
	}
	return false
}
