package clusterauth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ErrBadToken means the peer did not prove it holds the cluster token: it
// holds a different one, or it does not speak the handshake at all.
var ErrBadToken = errors.New("peer failed cluster token check")

// HandshakeTimeout bounds a handshake whose context has no earlier deadline.
const HandshakeTimeout = 10 * time.Second

// The handshake, on a fresh connection (I: initiator, R: responder; every
// message has a fixed size, so every read is bounded):
//
//	I → R  magic(8) ‖ nonceI(32)
//	R → I  nonceR(32) ‖ HMAC(k, label ‖ "responder" ‖ nonceI ‖ nonceR)
//	I → R  HMAC(k, label ‖ "initiator" ‖ nonceI ‖ nonceR)
//
// k is derived from the token (never the token itself). Each side checks
// the other's MAC in constant time. The role in the MAC stops a peer from
// reflecting one side's proof back at it; fresh nonces on both sides stop
// replays. An initiator that rejects the responder sends 32 random bytes in
// place of its proof, so the responder fails with ErrBadToken too rather
// than waiting for a close. The three messages alternate direction, so the
// exchange also works over a synchronous net.Pipe.
const (
	handshakeMagic = "DROVEHS1"
	macLabel       = "drove/v1 handshake "
	nonceSize      = 32
	macSize        = sha256.Size
)

// Handshake authenticates both ends of a fresh conn: each proves it knows
// token without sending it. Exactly one end passes initiator=true (the
// dialer). It returns nil when both hold the same token, an error matching
// ErrBadToken when the peer proved nothing, the context's error when ctx
// ended first, or the I/O error that stopped the exchange. Every error is
// wrapped with the remote address. On error the caller must close conn; on
// success conn's deadline is cleared and it is ready for use.
func Handshake(ctx context.Context, conn net.Conn, token string, initiator bool) error {
	remote := conn.RemoteAddr()
	if err := ValidateToken(token); err != nil {
		return fmt.Errorf("handshake with %s: %w", remote, err)
	}
	deadline := time.Now().Add(HandshakeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("handshake with %s: set deadline: %w", remote, err)
	}
	// A cancelled ctx interrupts blocked reads and writes at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })

	key := handshakeKey(token)
	var err error
	if initiator {
		err = initiate(conn, key)
	} else {
		err = respond(conn, key)
	}
	if !stop() {
		// ctx ended during the exchange; the deadline is already broken.
		return fmt.Errorf("handshake with %s: %w", remote, context.Cause(ctx))
	}
	if err != nil {
		return fmt.Errorf("handshake with %s: %w", remote, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("handshake with %s: clear deadline: %w", remote, err)
	}
	return nil
}

func initiate(conn net.Conn, key []byte) error {
	nonceI, err := nonce()
	if err != nil {
		return err
	}
	if _, err := conn.Write(append([]byte(handshakeMagic), nonceI...)); err != nil {
		return fmt.Errorf("send nonce: %w", err)
	}
	reply := make([]byte, nonceSize+macSize)
	if _, err := io.ReadFull(conn, reply); err != nil {
		return fmt.Errorf("read responder proof: %w", err)
	}
	nonceR, got := reply[:nonceSize], reply[nonceSize:]
	if !hmac.Equal(got, proof(key, "responder", nonceI, nonceR)) {
		// Tell the responder no in the shape of a proof; it fails its
		// check and both ends report ErrBadToken. Send errors do not
		// matter any more.
		junk := make([]byte, macSize)
		_, _ = rand.Read(junk)
		_, _ = conn.Write(junk)
		return fmt.Errorf("responder proof does not match: %w", ErrBadToken)
	}
	if _, err := conn.Write(proof(key, "initiator", nonceI, nonceR)); err != nil {
		return fmt.Errorf("send proof: %w", err)
	}
	return nil
}

func respond(conn net.Conn, key []byte) error {
	hello := make([]byte, len(handshakeMagic)+nonceSize)
	if _, err := io.ReadFull(conn, hello); err != nil {
		return fmt.Errorf("read initiator nonce: %w", err)
	}
	if string(hello[:len(handshakeMagic)]) != handshakeMagic {
		return fmt.Errorf("peer does not speak the drove handshake: %w", ErrBadToken)
	}
	nonceI := hello[len(handshakeMagic):]
	nonceR, err := nonce()
	if err != nil {
		return err
	}
	if _, err := conn.Write(append(nonceR, proof(key, "responder", nonceI, nonceR)...)); err != nil {
		return fmt.Errorf("send proof: %w", err)
	}
	got := make([]byte, macSize)
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("read initiator proof: %w", err)
	}
	if !hmac.Equal(got, proof(key, "initiator", nonceI, nonceR)) {
		return fmt.Errorf("initiator proof does not match: %w", ErrBadToken)
	}
	return nil
}

func nonce() ([]byte, error) {
	n := make([]byte, nonceSize)
	if _, err := rand.Read(n); err != nil {
		return nil, fmt.Errorf("draw nonce: %w", err)
	}
	return n, nil
}

// proof is HMAC-SHA256(key, label ‖ role ‖ nonceI ‖ nonceR).
func proof(key []byte, role string, nonceI, nonceR []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(macLabel))
	m.Write([]byte(role))
	m.Write(nonceI)
	m.Write(nonceR)
	return m.Sum(nil)
}
