package discover

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"

	"github.com/drove-project/drove/layers/reference"
)

// Image is one container image a cluster image needs.
type Image struct {
	Ref     string // normalized with layers/reference: docker.io/library/nginx:1.25
	AppName string // the app when found under application/apps/<name>/ (extension.AppRoot); else ""
	// Source says where Ref was found first, for messages:
	// "manifests/app.yaml:12", "charts/web (helm, default values)",
	// "manifests/imageList:3", "--image-list list.txt:4",
	// "--image-list-with-auth auth.yaml:7".
	Source string
}

// Options are the image lists given on the command line.
type Options struct {
	ImageLists   []string // --image-list FILE...: more images (ParseImageList)
	AuthLists    []string // --image-list-with-auth FILE...: images with credentials (ParseAuthList)
	IgnoredLists []string // --ignored-image-list FILE...: images to leave out (ParseImageList)
	Log          *slog.Logger
}

// Result is what Discover found.
type Result struct {
	Images   []Image       // de-duplicated by (Ref, AppName), sorted by Ref then AppName
	Auth     []AuthSection // the sections of Options.AuthLists, in order, ignored images removed
	Warnings []string      // "FILE:LINE: ...": image fields skipped, ignored images not found, files skipped
}

// Discover finds the container images the cluster image materialised at
// rootfs needs. It reads, relative to rootfs and never inside
// container-images/:
//
//   - every file named imageList, wherever it is (ParseImageList);
//   - the *.yaml and *.yml files under manifests/ and under
//     application/apps/<name>/, outside Helm charts (ManifestImages);
//   - the Helm charts (directories with Chart.yaml) under charts/,
//     manifests/ and application/apps/<name>/, rendered at their default
//     values (ChartImages); a chart's subcharts render with it;
//
// then Options.ImageLists and Options.AuthLists, and takes out the images
// of Options.IgnoredLists. Images found under application/apps/<name>/
// carry that app's name. Files and charts are read through the rootfs:
// symlinks that lead out of it are skipped with a warning (charts holding
// one are an error).
//
// Every problem is reported, up to 20, joined in one error: a bad line of
// an image list, YAML that does not parse, a bad auth list field (each an
// *Error naming file and line), a chart that does not render. An image
// field holding something other than a reference (a template left in a
// manifest) is a warning, not an error.
func Discover(ctx context.Context, rootfs string, o Options) (Result, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &discoverer{ctx: ctx, rootfs: rootfs, log: log, index: map[imageKey]int{}}
	if err := d.walkRootfs(); err != nil {
		return Result{}, err
	}
	for _, f := range o.ImageLists {
		d.imageListFlag(f)
	}
	auth := d.authLists(o.AuthLists)
	ignored := d.ignoredLists(o.IgnoredLists)
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := d.errs.err(); err != nil {
		return Result{}, fmt.Errorf("find container images in %s: %w", rootfs, err)
	}
	res := Result{Images: d.filter(ignored), Auth: filterAuth(auth, ignored), Warnings: d.warnings}
	slices.SortFunc(res.Images, func(a, b Image) int {
		return cmp.Or(cmp.Compare(a.Ref, b.Ref), cmp.Compare(a.AppName, b.AppName))
	})
	log.Info("found container images", "images", len(res.Images), "warnings", len(res.Warnings))
	return res, nil
}

// imageKey is what Result.Images is de-duplicated by.
type imageKey struct{ ref, app string }

// discoverer holds the state of one Discover call.
type discoverer struct {
	ctx      context.Context
	rootfs   string
	log      *slog.Logger
	images   []Image
	index    map[imageKey]int // into images
	warnings []string
	errs     errList
}

// add records a normalized reference unless (ref, app) is known already.
func (d *discoverer) add(ref, app, source string) {
	k := imageKey{ref, app}
	if _, ok := d.index[k]; ok {
		return
	}
	d.index[k] = len(d.images)
	d.images = append(d.images, Image{Ref: ref, AppName: app, Source: source})
}

// addField records the value of an image field found at where, warning
// when it is not a reference.
func (d *discoverer) addField(raw, app, source, where string) {
	ref, err := reference.Normalize(raw)
	if err != nil {
		d.warnf("%s: image %q is not an image reference, skipped: %v", where, raw, err)
		return
	}
	d.add(ref, app, source)
}

func (d *discoverer) warnf(format string, args ...any) {
	w := fmt.Sprintf(format, args...)
	d.warnings = append(d.warnings, w)
	d.log.Debug("container image discovery", "warning", w)
}

// imageListFlag reads one --image-list file.
func (d *discoverer) imageListFlag(file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		d.errs.add(fmt.Errorf("read --image-list: %w", err))
		return
	}
	entries, err := ParseImageList(data, file)
	if err != nil {
		d.errs.add(err)
		return
	}
	for _, e := range entries {
		d.add(e.Ref, "", "--image-list "+file+":"+strconv.Itoa(e.Line))
	}
	d.log.Debug("read image list", "file", file, "images", len(entries))
}

// authLists reads the --image-list-with-auth files; a registry must have
// the same credentials in all of them.
func (d *discoverer) authLists(files []string) []AuthSection {
	var out []AuthSection
	type at struct {
		file               string
		line               int
		username, password string
	}
	byRegistry := map[string]at{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			d.errs.add(fmt.Errorf("read --image-list-with-auth: %w", err))
			continue
		}
		secs, err := parseAuthList(data, file)
		if err != nil {
			d.errs.add(err)
			continue
		}
		for _, s := range secs {
			prev, ok := byRegistry[s.Registry]
			if ok && (prev.username != s.Username || prev.password != s.Password) {
				d.errs.add(&Error{File: file, Line: s.Line, Field: "registry", Msg: fmt.Sprintf("registry %s has other credentials at %s:%d", s.Registry, prev.file, prev.line), Err: ErrInvalid})
				continue
			}
			if !ok {
				byRegistry[s.Registry] = at{file, s.Line, s.Username, s.Password}
			}
			for i, ref := range s.Images {
				d.add(ref, "", "--image-list-with-auth "+file+":"+strconv.Itoa(s.ImageLines[i]))
			}
			out = append(out, s.AuthSection)
		}
		d.log.Debug("read image list with auth", "file", file, "sections", len(secs))
	}
	return out
}

// ignoredLists reads the --ignored-image-list files into a set of
// references, each with where it was first written.
func (d *discoverer) ignoredLists(files []string) map[string]string {
	out := map[string]string{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			d.errs.add(fmt.Errorf("read --ignored-image-list: %w", err))
			continue
		}
		entries, err := ParseImageList(data, file)
		if err != nil {
			d.errs.add(err)
			continue
		}
		for _, e := range entries {
			if _, ok := out[e.Ref]; !ok {
				out[e.Ref] = file + ":" + strconv.Itoa(e.Line)
			}
		}
	}
	return out
}

// filter returns the images found that ignored does not name, warning for
// each ignored reference that matched nothing.
func (d *discoverer) filter(ignored map[string]string) []Image {
	used := map[string]bool{}
	var out []Image
	for _, im := range d.images {
		if _, ok := ignored[im.Ref]; ok {
			used[im.Ref] = true
			continue
		}
		out = append(out, im)
	}
	var unused []string
	for ref := range ignored {
		if !used[ref] {
			unused = append(unused, ref)
		}
	}
	slices.Sort(unused)
	for _, ref := range unused {
		d.warnf("%s: ignored image %s is not among the images found", ignored[ref], ref)
	}
	return out
}

// filterAuth removes the ignored images from the auth sections, so that
// every image of Result.Auth is in Result.Images.
func filterAuth(secs []AuthSection, ignored map[string]string) []AuthSection {
	for i := range secs {
		secs[i].Images = slices.DeleteFunc(secs[i].Images, func(ref string) bool {
			_, ok := ignored[ref]
			return ok
		})
	}
	return secs
}
