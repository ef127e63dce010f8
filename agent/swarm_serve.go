package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/layers/swarm"
	"github.com/drove-project/drove/protocol"
)

// Serving: every distribution a node takes part in is served on its own
// data endpoint from the moment it is known. A piece request is answered
// from the Partial when that piece is verified there, else from the store
// when the blob is whole there, else with a not_found error reply. Replies
// wait for the node's upload limit, shared by all distributions.

const (
	// maxServing bounds the unit requests a node holds at once, waiting
	// for an upload slot or being sent; more are answered busy.
	maxServing = 256
	// maxSlotWait is the longest a request waits for an upload slot
	// before it is answered busy.
	maxSlotWait = 500 * time.Millisecond
	// maxUploadWait is the longest a request waits for the upload limit;
	// beyond it the requester is told to try elsewhere (code timeout).
	maxUploadWait = 10 * time.Second
)

// errUploadBusy: the upload limit would delay a reply too long.
var errUploadBusy = errors.New("upload limit busy")

// unitPool holds TransferUnit buffers for replies.
var unitPool = sync.Pool{New: func() any { b := make([]byte, protocol.TransferUnit); return &b }}

// subscribe starts serving the session's pieces and bitfield on the own
// endpoint, and waits until the endpoint has registered both.
func (ss *session) subscribe() error {
	nc := ss.sw.serve
	id := ss.dist.ID
	piece, err := nc.Subscribe(protocol.SwarmPieceSubject(id), ss.onPiece)
	if err != nil {
		return fmt.Errorf("serve distribution %s: %w", id, err)
	}
	subs := []*nats.Subscription{piece}
	unsubscribe := func() {
		for _, s := range subs {
			s.Unsubscribe()
		}
	}
	for subj, h := range map[string]nats.MsgHandler{
		protocol.SwarmBitfieldSubject(id): ss.onBitfield,
		protocol.SwarmDoneSubject(id):     ss.onDone,
	} {
		s, err := nc.Subscribe(subj, h)
		if err != nil {
			unsubscribe()
			return fmt.Errorf("serve distribution %s: %w", id, err)
		}
		subs = append(subs, s)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		unsubscribe()
		return fmt.Errorf("serve distribution %s: %w", id, err)
	}
	ss.subs = subs
	return nil
}

// onDone frees the upload slot of the piece a requester says it has.
func (ss *session) onDone(m *nats.Msg) {
	d, err := protocol.ParsePieceDone(m.Header.Get)
	if err != nil || m.Reply == "" {
		return
	}
	ss.sw.upSlots.done(requester(m.Reply), pieceRef{d.Blob, d.Piece})
}

// onPiece serves a piece request in a goroutine of its own: it may wait
// for an upload slot. Beyond maxServing requests at once it answers busy.
func (ss *session) onPiece(m *nats.Msg) {
	s := ss.sw
	if s.serving.Add(1) > maxServing {
		s.serving.Add(-1)
		respondError(m, protocol.Errorf(protocol.CodeBusy, "%d requests are waiting here: ask again shortly", maxServing))
		return
	}
	go func() {
		defer s.serving.Add(-1)
		ss.servePiece(s.base, m)
	}()
}

// servePiece answers one unit request.
func (ss *session) servePiece(ctx context.Context, m *nats.Msg) {
	req, perr := ss.parseRequest(m.Header.Get)
	if perr == nil {
		perr = ss.holds(req)
	}
	who, ref := requester(m.Reply), pieceRef{req.Blob, req.Piece}
	slotted := false
	if perr == nil {
		if slotted = ss.sw.upSlots.wait(ctx, who, ref, maxSlotWait); !slotted {
			if ctx.Err() != nil {
				return // shutting down
			}
			perr = protocol.Errorf(protocol.CodeBusy, "all %d upload slots are taken: ask again shortly", uploadSlots)
		}
	}
	if perr == nil && ss.ledger != nil && !ss.ledger.admit(who, ref, time.Now()) {
		perr = protocol.Errorf(protocol.CodeTimeout, "busy: this piece went out recently, fetch it from a peer that has it")
	}
	if slotted {
		defer func() { ss.sw.upSlots.sent(who, ref, perr == nil, time.Now()) }()
	}
	if perr == nil {
		if err := ss.sw.waitUpload(ctx, req.Length); err != nil {
			perr = protocol.Errorf(protocol.CodeTimeout, "over the upload limit: try another peer")
			if !errors.Is(err, errUploadBusy) {
				return // shutting down
			}
		}
	}
	var data []byte
	if perr == nil {
		bufp := unitPool.Get().(*[]byte)
		defer unitPool.Put(bufp)
		data, perr = ss.readUnit(req, *bufp)
	}
	if perr != nil {
		respondError(m, perr)
		return
	}
	if ss.sw.corrupt != nil {
		ss.sw.corrupt(data)
	}
	if err := m.RespondMsg(&nats.Msg{Data: data}); err != nil {
		ss.log.Debug("reply to piece request", "err", err)
		return
	}
	ss.uploaded.Add(int64(len(data)))
}

// parseRequest reads a unit request: bad_request for a malformed request
// or a range outside the piece, not_found for a blob outside the
// distribution.
func (ss *session) parseRequest(get func(string) string) (protocol.PieceRequest, *protocol.Error) {
	req, err := protocol.ParsePieceRequest(get)
	if err != nil {
		var perr *protocol.Error
		if errors.As(err, &perr) {
			return req, perr
		}
		return req, protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	bs := ss.blobs[req.Blob]
	if bs == nil {
		return req, protocol.Errorf(protocol.CodeNotFound, "blob %s is not in distribution %s", req.Blob, ss.dist.ID)
	}
	if req.Piece >= len(bs.bp.Pieces) {
		return req, protocol.Errorf(protocol.CodeBadRequest, "blob %s has %d pieces, not piece %d", req.Blob, len(bs.bp.Pieces), req.Piece)
	}
	if plen := swarm.PieceLen(bs.bp, req.Piece); req.Offset+int64(req.Length) > plen {
		return req, protocol.Errorf(protocol.CodeBadRequest, "piece %d of blob %s has %d bytes: %d at %d is outside it", req.Piece, req.Blob, plen, req.Length, req.Offset)
	}
	return req, nil
}

// source is where the verified piece req names can be read from (under
// bs.mu), or nil when this node does not hold it (yet).
func (bs *blobState) source(req protocol.PieceRequest) io.ReaderAt {
	switch {
	case bs.partial != nil && bs.partial.Has(req.Piece):
		return bs.partial
	case bs.partial == nil && bs.file != nil:
		return bs.file
	}
	return nil
}

// holds says not_found unless this node holds the piece a parsed request
// names, verified.
func (ss *session) holds(req protocol.PieceRequest) *protocol.Error {
	bs := ss.blobs[req.Blob]
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	if bs.source(req) == nil {
		return protocol.Errorf(protocol.CodeNotFound, "piece %d of blob %s is not here (yet)", req.Piece, req.Blob)
	}
	return nil
}

// readUnit reads the unit a parsed request names into buf (TransferUnit
// bytes).
func (ss *session) readUnit(req protocol.PieceRequest, buf []byte) ([]byte, *protocol.Error) {
	bs := ss.blobs[req.Blob]
	off := swarm.PieceOffset(bs.bp, req.Piece) + req.Offset
	b := buf[:req.Length]
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	r := bs.source(req)
	if r == nil {
		return nil, protocol.Errorf(protocol.CodeNotFound, "piece %d of blob %s is not here (yet)", req.Piece, req.Blob)
	}
	if _, err := r.ReadAt(b, off); err != nil {
		ss.log.Warn("read piece to serve", "digest", req.Blob, "piece", req.Piece, "err", err)
		return nil, protocol.Errorf(protocol.CodeInternal, "read piece %d of blob %s failed", req.Piece, req.Blob)
	}
	return b, nil
}

// requester names who sent a request: its reply subject without the
// last token (a connection's requests share an inbox prefix).
func requester(reply string) string {
	if i := strings.LastIndexByte(reply, '.'); i > 0 {
		return reply[:i]
	}
	return reply
}

// respondError replies to a piece request with error headers and no bytes.
func respondError(m *nats.Msg, e *protocol.Error) {
	r := &nats.Msg{Header: nats.Header{}}
	r.Header.Set(protocol.HeaderError, e.Message)
	r.Header.Set(protocol.HeaderCode, string(e.Code))
	m.RespondMsg(r)
}

// onBitfield answers a bitfield request: every blob this node has begun.
func (ss *session) onBitfield(m *nats.Msg) {
	b, err := protocol.Encode(ss.bitfields())
	if err != nil {
		ss.log.Error("encode bitfields", "err", err)
		return
	}
	if err := m.Respond(b); err != nil {
		ss.log.Debug("reply to bitfield request", "err", err)
	}
}

// bitfields is the session's Bitfields message.
func (ss *session) bitfields() *protocol.Bitfields {
	out := &protocol.Bitfields{Blobs: map[string][]byte{}}
	for _, bs := range ss.order {
		bs.mu.RLock()
		switch {
		case bs.partial == nil && bs.file != nil:
			out.Blobs[bs.bp.Digest] = swarm.FullBitfield(len(bs.bp.Pieces)).Bytes()
		case bs.partial != nil:
			if have := bs.partial.Have(); have.Count() > 0 {
				out.Blobs[bs.bp.Digest] = have.Bytes()
			}
		}
		bs.mu.RUnlock()
	}
	return out
}

// publishHave tells the session's peers about one more verified piece.
func (ss *session) publishHave(blob string, piece int) {
	b, err := protocol.Encode(&protocol.Have{Blob: blob, Piece: piece})
	if err == nil {
		err = ss.sw.serve.Publish(protocol.SwarmHaveSubject(ss.dist.ID), b)
	}
	if err != nil {
		ss.log.Warn("publish have", "digest", blob, "piece", piece, "err", err)
	}
}

// waitUpload waits until n more bytes fit the upload limit. It fails with
// errUploadBusy, without waiting, when that would take longer than
// maxUploadWait.
func (s *Swarm) waitUpload(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	r := s.limiter.ReserveN(time.Now(), n)
	if !r.OK() {
		return fmt.Errorf("%d bytes exceed the upload burst: %w", n, errUploadBusy)
	}
	d := r.Delay()
	if d > maxUploadWait {
		r.Cancel()
		return errUploadBusy
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	}
}

// flipByte is the corrupting fault: it inverts the middle byte of a unit.
func flipByte(b []byte) {
	if len(b) > 0 {
		b[len(b)/2] ^= 0xff
	}
}
