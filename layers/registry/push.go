package registry

import (
	"context"
	"fmt"
	"github.com/drove-project/drove/layers/reference"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Push uploads obj, a v1.Image or a v1.ImageIndex (with every child image),
// to ref, using the stored credentials for ref's registry. Layers already in
// the registry are not uploaded again. Options.Progress, if set, sees the
// layer bytes uploaded.
func Push(ctx context.Context, ref string, obj remote.Taggable, opts Options) error {
	switch obj.(type) {
	case v1.Image, v1.ImageIndex:
	default:
		return fmt.Errorf("push %s: %T is neither an image nor an index", ref, obj)
	}
	r, err := opts.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	ep, ropts, err := opts.remote(ctx, r)
	if err != nil {
		return fmt.Errorf("push %s: %w", reference.String(r), err)
	}
	var updates chan v1.Update
	done := make(chan struct{})
	if opts.Progress != nil {
		updates = make(chan v1.Update, 64)
		ropts = append(ropts, remote.WithProgress(updates))
		go func() {
			defer close(done)
			for u := range updates {
				if u.Error == nil {
					opts.Progress(u.Complete, u.Total)
				}
			}
		}()
	} else {
		close(done)
	}
	// A Pusher, unlike remote.Push, leaves the progress channel open, so it
	// is closed here exactly once whatever happened.
	p, err := remote.NewPusher(ropts...)
	if err == nil {
		err = p.Push(ctx, r, obj)
	}
	if updates != nil {
		close(updates)
	}
	<-done
	if err != nil {
		return fmt.Errorf("push %s: %w", reference.String(r), ep.Classify(err, reference.String(r)))
	}
	return nil
}
