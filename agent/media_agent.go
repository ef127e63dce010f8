package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path/filepath"
	"strconv"
	"time"

	"github.com/drove-project/drove/layers/store"
	"github.com/drove-project/drove/protocol"
)

// MediaRefusedLabel is the label an agent started with Config.Media adds
// to its gossip meta once the media are imported: how many of their blobs
// it refused ("0" when every blob verified). `drove status -o json` shows
// it with the node's labels; the node's log names each refused blob.
const MediaRefusedLabel = "drove.io/media-refused"

// importMedia imports the media layout (Config.Media) into the agent's
// store, reports the refusals in gossip, and closes a.mediaDone. It never
// fails the agent: media gone after a reboot, or unreadable, only mean the
// swarm delivers what they would have.
func (a *Agent) importMedia(ctx context.Context) {
	defer close(a.mediaDone)
	dir := a.cfg.Media
	st, err := store.Open(filepath.Join(a.cfg.DataDir, "store"))
	if err != nil {
		a.log.Error("media not imported", "media", dir, "err", err)
		return
	}
	started := time.Now()
	rep, err := ImportMedia(ctx, dir, st, MediaOptions{Log: a.log})
	switch {
	case ctx.Err() != nil:
		return
	case errors.Is(err, fs.ErrNotExist):
		// Usual after the installing media were removed: whatever they
		// held was imported at the first start.
		a.log.Warn("media not found; nothing imported from them", "media", dir, "err", err)
		return
	case err != nil:
		a.log.Error("media not imported", "media", dir, "err", err)
		return
	}
	a.log.Info("media ready to seed", "media", dir, "blobs", rep.Blobs, "refused", len(rep.Refused),
		"images", rep.Named, "ms", time.Since(started).Milliseconds())
	a.mu.Lock()
	a.mediaRefused = strconv.Itoa(len(rep.Refused))
	a.mu.Unlock()
	uctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.gossip.UpdateMeta(uctx, a.member()); err != nil && ctx.Err() == nil {
		a.log.Warn("report media refusals in gossip", "err", err)
	}
}

// labels are the node's labels as gossiped: the configured ones, plus
// MediaRefusedLabel once the media are imported.
func (a *Agent) labels() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mediaRefused == "" {
		return a.cfg.Labels
	}
	out := maps.Clone(a.cfg.Labels)
	if out == nil {
		out = map[string]string{}
	}
	out[MediaRefusedLabel] = a.mediaRefused
	return out
}

// afterMedia runs next only once the media import has ended, so that a
// distribute step finds the media's blobs in the store: a seed holds them
// all, a receiver fetches only what the media lacked.
func (a *Agent) afterMedia(next Action) Action {
	return ActionFunc(func(ctx context.Context, act protocol.Action, out io.Writer) (int, map[string]string, error) {
		select {
		case <-a.mediaDone:
		default:
			a.log.Info("step waits for the media import", "media", a.cfg.Media)
			fmt.Fprintf(out, "waiting for the import of the media at %s\n", a.cfg.Media)
			select {
			case <-a.mediaDone:
			case <-ctx.Done():
				return 1, nil, context.Cause(ctx)
			}
		}
		return next.Run(ctx, act, out)
	})
}
