package build

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/layers/kubefile"
	"github.com/drove-project/drove/layers/layer"
)

// copyStep adds a layer holding srcs (context paths, local://, http(s)://)
// at dest: COPY, ADD, and APP/CNI/CSI (dest is the app's directory).
func (b *builder) copyStep(ctx context.Context, st *imageState, step kubefile.Step, srcs []string, dest string, remote *remoteFiles, res *Result) error {
	var local []string
	var entries []layer.Entry
	for _, src := range srcs {
		src = kubefile.ResolveArch(src, st.arch)
		if p, ok := kubefile.LocalPath(src); ok {
			local = append(local, p)
			continue
		}
		if kubefile.IsRemote(src) {
			if step.Cmd == kubefile.Copy {
				return fmt.Errorf("COPY cannot fetch %s: use ADD or APP for URLs", src)
			}
			hp := remote.hostPaths[src]
			entries = append(entries, layer.Entry{Src: hp, Dest: path.Join(dest, path.Base(hp))})
			continue
		}
		local = append(local, src)
	}
	if len(entries) > 0 && !strings.HasSuffix(dest, "/") {
		dest += "/"
	}
	if len(local) > 0 {
		es, err := layer.ResolveCopy(b.o.Context, local, dest)
		if err != nil {
			return err
		}
		entries = append(entries, es...)
	}
	fp, meta, total, err := fingerprint(entries)
	if err != nil {
		return err
	}
	instr := keyOf(step.Cmd, strings.Join(step.Args, "\x00"), mapKey(step.Flags))
	if !b.o.NoCache {
		var contentKey string
		if b.cache.get("inputs", fp, &contentKey) {
			if b.reuse(st, step, keyOf(st.key, instr, contentKey), res) {
				return nil
			}
		}
	}
	tr := b.o.Progress.Track(label(oneLine(b.kf, step)))
	w, err := b.s.NewBlobWriter()
	if err != nil {
		tr.Done(err)
		return err
	}
	defer w.Cancel()
	out := &trackingWriter{w: w, tr: tr, total: total}
	lr, err := layer.WriteLayer(ctx, out, entries, layer.Options{Compression: b.o.Compression})
	tr.Done(err)
	if err != nil {
		return err
	}
	contentKey := contentKeyOf(entries, meta, lr.Files)
	stepKey := keyOf(st.key, instr, contentKey)
	if err := b.cache.put("inputs", fp, contentKey); err != nil {
		return err
	}
	if !b.o.NoCache && b.reuse(st, step, stepKey, res) {
		return nil // same content under new mtimes: keep the cached layer
	}
	return b.commitLayer(st, step, stepKey, w, lr, res)
}

// reuse appends the cached layer for key, if there is one whose blob is
// still in the store.
func (b *builder) reuse(st *imageState, step kubefile.Step, key string, res *Result) bool {
	var cl cachedLayer
	if !b.cache.get("steps", key, &cl) || (!cl.Empty && !b.s.HasBlob(cl.Layer.Digest)) {
		return false
	}
	if b.o.RunHook != nil && len(cl.Notes) > 0 {
		b.o.RunHook.Reused(cl.Notes)
	}
	b.appendLayer(st, step, key, cl)
	res.Steps++
	res.Cached++
	fmt.Fprintln(b.o.Out, " ---> CACHED")
	return true
}

func (b *builder) appendLayer(st *imageState, step kubefile.Step, key string, cl cachedLayer) {
	st.key = key
	if cl.Empty {
		st.history = append(st.history, b.history(step, true))
		return
	}
	st.layers = append(st.layers, cl.Layer)
	st.diffIDs = append(st.diffIDs, cl.DiffID)
	st.history = append(st.history, b.history(step, false))
}

// commitLayer moves a freshly written layer into the store and the cache.
func (b *builder) commitLayer(st *imageState, step kubefile.Step, key string, w interface {
	Commit(v1.Hash) (v1.Hash, error)
}, lr layer.Result, res *Result) error {
	if _, err := w.Commit(lr.Digest); err != nil {
		return err
	}
	cl := cachedLayer{Layer: v1.Descriptor{MediaType: lr.MediaType, Size: lr.Size, Digest: lr.Digest}, DiffID: lr.DiffID,
		Notes: b.takeNotes()}
	if err := b.cache.put("steps", key, cl); err != nil {
		return err
	}
	b.appendLayer(st, step, key, cl)
	res.Steps++
	fmt.Fprintf(b.o.Out, " ---> layer %s (%s)\n", shortDigest(lr.Digest), progress.HumanBytes(lr.Size))
	return nil
}

// label shortens an instruction to fit in front of a progress bar.
func label(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:39]) + "…"
	}
	return s
}

func shortDigest(h v1.Hash) string {
	if len(h.Hex) > 12 {
		return h.Algorithm + ":" + h.Hex[:12]
	}
	return h.String()
}

// fileMeta is what the fingerprint and the content key record of an entry.
type fileMeta struct {
	Dest string      `json:"d"`
	Mode os.FileMode `json:"m"`
	Size int64       `json:"s"`
	Link string      `json:"l,omitempty"`
	Mt   int64       `json:"t"`
	Ino  uint64      `json:"i"`
	Dev  uint64      `json:"v"`
}

// fingerprint hashes the entries' metadata without reading any content.
func fingerprint(entries []layer.Entry) (string, map[string]fileMeta, int64, error) {
	meta := make(map[string]fileMeta, len(entries))
	list := make([]fileMeta, 0, len(entries))
	var total int64
	for _, e := range entries {
		fi, err := os.Lstat(e.Src)
		if err != nil {
			return "", nil, 0, err
		}
		m := fileMeta{Dest: layer.CleanPath(e.Dest), Mode: fi.Mode(), Size: fi.Size(), Mt: fi.ModTime().UnixNano()}
		if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
			m.Ino, m.Dev = sys.Ino, uint64(sys.Dev)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			m.Link, _ = os.Readlink(e.Src)
		}
		if fi.Mode().IsRegular() {
			total += fi.Size()
		}
		meta[e.Src] = m
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Dest < list[j].Dest })
	b, _ := json.Marshal(list)
	return keyOf("fingerprint", string(b)), meta, total, nil
}

// contentKeyOf hashes what ends up in the layer: paths, modes, link targets
// and file contents, but not mtimes or inodes.
func contentKeyOf(entries []layer.Entry, meta map[string]fileMeta, files map[string]v1.Hash) string {
	lines := make([]string, 0, len(entries))
	for _, e := range entries {
		m := meta[e.Src]
		lines = append(lines, fmt.Sprintf("%s\x00%o\x00%s\x00%s", m.Dest, uint32(m.Mode), m.Link, files[e.Src]))
	}
	sort.Strings(lines)
	return keyOf(append([]string{"content"}, lines...)...)
}

// trackingWriter reports bytes of input consumed as layer bytes are written.
type trackingWriter struct {
	w     io.Writer
	tr    progress.Tracker
	n     int64
	total int64
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.n += int64(n)
	t.tr.Set(t.n, t.total)
	return n, err
}
