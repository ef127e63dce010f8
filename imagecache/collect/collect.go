package collect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/drove-project/drove/layers/reference"
	"github.com/drove-project/drove/layers/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultConcurrency is how many images Collect pulls at once when
// Options.Concurrency is not set.
const DefaultConcurrency = 4

// Request names one image to collect.
type Request struct {
	// Ref is the image reference, e.g. docker.io/library/nginx:1.25 or
	// repo@sha256:...; it is normalised again, so short forms work too.
	Ref string
	// AppName is the application the image belongs to, "" for none; it is
	// only carried over to Collected.
	AppName string
}

// Options configure Collect.
type Options struct {
	// Platforms are the target platforms; at least one is required.
	Platforms []v1.Platform
	// Registry gives the credentials file (AuthFile), Insecure, Transport
	// and UserAgent. Registries on loopback are reached over plain HTTP
	// without Insecure. Its Platform and Progress fields are not used.
	Registry registry.Options
	// Auth holds credentials per registry host ("docker.io",
	// "reg.example.com:5000"); they win over the credentials file.
	Auth map[string]authn.Authenticator
	// Have reports blobs already carried elsewhere (lower layers of the
	// cluster image): they are referenced but neither fetched nor written.
	// It is called from several goroutines at once.
	Have func(v1.Hash) bool
	// Concurrency is how many images are pulled at once; default
	// DefaultConcurrency.
	Concurrency int
	// Progress, when set, receives Events for every image. Calls come
	// from several goroutines but never overlap.
	Progress func(Event)
	// Log receives one record per image; nil discards.
	Log *slog.Logger
}

// Collected is one image that is now in the layout.
type Collected struct {
	// Ref is the normalised reference, as in io.containerd.image.name.
	Ref string
	// AppName is the request's AppName.
	AppName string
	// Digest, MediaType and Size describe the manifest or index as the
	// registry serves it: the layout's index.json entry for Ref.
	Digest    v1.Hash
	MediaType types.MediaType
	Size      int64
	// Platforms are the platforms written: the index entries' platforms
	// for an index, the config's platform for a single image.
	Platforms []v1.Platform
}

// collector is the state of one Collect call.
type collector struct {
	blobs   *blobStore
	regs    *registries
	targets platformSet
	log     *slog.Logger
	rep     *reporter
}

// job is one distinct image reference of a Collect call.
type job struct {
	ref       name.Reference
	shown     string
	desc      v1.Descriptor
	platforms []v1.Platform
	err       error
}

// Collect pulls every requested image for o.Platforms into the OCI image
// layout dir, creating the layout if needed and keeping index.json entries
// it already has (an entry with the same image name is replaced). A
// reference requested twice is pulled once.
//
// An image that cannot be collected does not stop the others: Collect
// returns the collected images (in request order) and a *MissingError
// listing the failures. Other errors (the layout cannot be read or
// written, ctx ended) return no images, and index.json is then left as it
// was. Only one Collect may write to dir at a time.
func Collect(ctx context.Context, dir string, reqs []Request, o Options) ([]Collected, error) {
	if len(o.Platforms) == 0 {
		return nil, errors.New("collect container images: no target platform given")
	}
	idx, err := prepareLayout(dir)
	if err != nil {
		return nil, fmt.Errorf("collect container images into %s: %w", dir, err)
	}
	if err := removeStaleTemps(dir); err != nil {
		return nil, fmt.Errorf("collect container images into %s: %w", dir, err)
	}
	c := &collector{
		blobs:   newBlobStore(dir, o.Have),
		regs:    newRegistries(o.Registry, o.Auth),
		targets: newPlatformSet(o.Platforms),
		log:     o.Log,
		rep:     &reporter{fn: o.Progress},
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}

	jobs, perReq, parseErrs := c.plan(reqs)
	c.run(ctx, jobs, o.Concurrency)
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("collect container images into %s: %w", dir, err)
	}

	var entries []v1.Descriptor
	for _, j := range jobs {
		if j.err == nil {
			entries = append(entries, j.desc)
		}
	}
	idx.Manifests = mergeEntries(idx.Manifests, entries)
	if err := writeIndex(dir, idx); err != nil {
		return nil, fmt.Errorf("collect container images into %s: %w", dir, err)
	}

	var out []Collected
	var failures []Failure
	reported := make(map[*job]bool)
	for i, r := range reqs {
		j := perReq[i]
		switch {
		case j == nil:
			failures = append(failures, Failure{Ref: r.Ref, Err: parseErrs[i]})
		case j.err != nil:
			if !reported[j] {
				reported[j] = true
				failures = append(failures, Failure{Ref: j.shown, Err: j.err})
			}
		default:
			out = append(out, Collected{
				Ref: j.shown, AppName: r.AppName,
				Digest: j.desc.Digest, MediaType: j.desc.MediaType, Size: j.desc.Size,
				Platforms: j.platforms,
			})
		}
	}
	if len(failures) > 0 {
		return out, &MissingError{Failures: failures}
	}
	return out, nil
}

// plan parses the requests into distinct jobs. perReq[i] is request i's
// job, nil when its reference does not parse (parseErrs[i] says why).
func (c *collector) plan(reqs []Request) (jobs []*job, perReq []*job, parseErrs []error) {
	perReq = make([]*job, len(reqs))
	parseErrs = make([]error, len(reqs))
	byRef := make(map[string]*job)
	for i, r := range reqs {
		ref, err := c.regs.opts.ParseReference(r.Ref)
		if err != nil {
			parseErrs[i] = err
			continue
		}
		shown := reference.String(ref)
		j, ok := byRef[shown]
		if !ok {
			j = &job{ref: ref, shown: shown}
			byRef[shown] = j
			jobs = append(jobs, j)
		}
		perReq[i] = j
	}
	return jobs, perReq, parseErrs
}

// run pulls the jobs, concurrency at a time, until all are done or ctx
// ends.
func (c *collector) run(ctx context.Context, jobs []*job, concurrency int) {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			j.desc, j.platforms, j.err = c.collectImage(ctx, j.ref)
		})
	}
}
