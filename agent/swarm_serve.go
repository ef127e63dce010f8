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
	// serveConcurrency bounds the unit requests served at once; more wait
	// in the subscription's queue.
	serveConcurrency = 32
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
	bits, err := nc.Subscribe(protocol.SwarmBitfieldSubject(id), ss.onBitfield)
	if err != nil {
		piece.Unsubscribe()
		return fmt.Errorf("serve distribution %s: %w", id, err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		piece.Unsubscribe()
		bits.Unsubscribe()
		return fmt.Errorf("serve distribution %s: %w", id, err)
	}
	ss.subs = []*nats.Subscription{piece, bits}
	return nil
}

// onPiece hands a piece request to a serving goroutine; when all are busy
// it blocks the subscription, so requests queue at the endpoint.
func (ss *session) onPiece(m *nats.Msg) {
	s := ss.sw
	select {
	case s.slots <- struct{}{}:
	case <-s.base.Done():
		return
	}
	go func() {
		defer func() { <-s.slots }()
		ss.servePiece(s.base, m)
	}()
}

// servePiece answers one unit request.
func (ss *session) servePiece(ctx context.Context, m *nats.Msg) {
	bufp := unitPool.Get().(*[]byte)
	defer unitPool.Put(bufp)
	req, data, perr := ss.readUnit(m.Header.Get, *bufp)
	who, ref := requester(m.Reply), pieceRef{req.Blob, req.Piece}
	slotted := false
	if perr == nil {
		units := int((swarm.PieceLen(ss.blobs[req.Blob].bp, req.Piece) + protocol.TransferUnit - 1) / protocol.TransferUnit)
		if slotted = ss.sw.upSlots.admit(who, ref, units, time.Now()); !slotted {
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
		if err := ss.sw.waitUpload(ctx, len(data)); err != nil {
			perr = protocol.Errorf(protocol.CodeTimeout, "over the upload limit: try another peer")
			if !errors.Is(err, errUploadBusy) {
				return // shutting down
			}
		}
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

// readUnit reads the unit a request names into buf (TransferUnit bytes),
// or says why it cannot: bad_request for a malformed request or a range
// outside the piece, not_found for a blob outside the distribution or a
// piece this node does not hold verified.
func (ss *session) readUnit(get func(string) string, buf []byte) (protocol.PieceRequest, []byte, *protocol.Error) {
	req, err := protocol.ParsePieceRequest(get)
	if err != nil {
		var perr *protocol.Error
		if errors.As(err, &perr) {
			return req, nil, perr
		}
		return req, nil, protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	bs := ss.blobs[req.Blob]
	if bs == nil {
		return req, nil, protocol.Errorf(protocol.CodeNotFound, "blob %s is not in distribution %s", req.Blob, ss.dist.ID)
	}
	if req.Piece >= len(bs.bp.Pieces) {
		return req, nil, protocol.Errorf(protocol.CodeBadRequest, "blob %s has %d pieces, not piece %d", req.Blob, len(bs.bp.Pieces), req.Piece)
	}
	plen := swarm.PieceLen(bs.bp, req.Piece)
	if req.Offset+int64(req.Length) > plen {
		return req, nil, protocol.Errorf(protocol.CodeBadRequest, "piece %d of blob %s has %d bytes: %d at %d is outside it", req.Piece, req.Blob, plen, req.Length, req.Offset)
	}
	off := swarm.PieceOffset(bs.bp, req.Piece) + req.Offset
	b := buf[:req.Length]
	bs.mu.RLock()
	defer bs.mu.RUnlock()
	var r io.ReaderAt
	switch {
	case bs.partial != nil && bs.partial.Have().Has(req.Piece):
		r = bs.partial
	case bs.partial == nil && bs.file != nil:
		r = bs.file
	default:
		return req, nil, protocol.Errorf(protocol.CodeNotFound, "piece %d of blob %s is not here (yet)", req.Piece, req.Blob)
	}
	if _, err := r.ReadAt(b, off); err != nil {
		ss.log.Warn("read piece to serve", "digest", req.Blob, "piece", req.Piece, "err", err)
		return req, nil, protocol.Errorf(protocol.CodeInternal, "read piece %d of blob %s failed", req.Piece, req.Blob)
	}
	return req, b, nil
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
