package clusterauth

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

const (
	tokenA = "drove-handshake-test-token-A"
	tokenB = "drove-handshake-test-token-B"
)

// pair returns two connected ends, over net.Pipe or real loopback TCP.
func pair(t *testing.T, kind string) (dialer, acceptor net.Conn) {
	t.Helper()
	if kind == "pipe" {
		a, b := net.Pipe()
		t.Cleanup(func() { a.Close(); b.Close() })
		return a, b
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { d.Close(); a.Close() })
	return d, a
}

// both runs a handshake on each end at once and returns (initiator,
// responder) errors. Each side closes its conn on failure, as callers must.
func both(t *testing.T, i, r net.Conn, tokI, tokR string) (errI, errR error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc := make(chan error, 1)
	go func() {
		err := Handshake(ctx, r, tokR, false)
		if err != nil {
			r.Close()
		}
		rc <- err
	}()
	errI = Handshake(ctx, i, tokI, true)
	if errI != nil {
		i.Close()
	}
	select {
	case errR = <-rc:
	case <-time.After(10 * time.Second):
		t.Fatal("responder handshake hangs")
	}
	return errI, errR
}

func TestHandshakeSameToken(t *testing.T) {
	for _, kind := range []string{"pipe", "tcp"} {
		t.Run(kind, func(t *testing.T) {
			i, r := pair(t, kind)
			errI, errR := both(t, i, r, tokenA, tokenA)
			if errI != nil || errR != nil {
				t.Fatalf("handshake failed: initiator %v, responder %v", errI, errR)
			}
			// The connection is usable afterwards: deadlines are cleared
			// and no handshake bytes are left unread.
			go func() { _, _ = i.Write([]byte("raft")) }()
			buf := make([]byte, 4)
			if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "raft" {
				t.Fatalf("after handshake read %q, %v; want \"raft\"", buf, err)
			}
		})
	}
}

func TestHandshakeDifferentTokens(t *testing.T) {
	for _, kind := range []string{"pipe", "tcp"} {
		t.Run(kind, func(t *testing.T) {
			i, r := pair(t, kind)
			errI, errR := both(t, i, r, tokenA, tokenB)
			if !errors.Is(errI, ErrBadToken) {
				t.Errorf("initiator: got %v, want ErrBadToken", errI)
			}
			if !errors.Is(errR, ErrBadToken) {
				t.Errorf("responder: got %v, want ErrBadToken", errR)
			}
		})
	}
}

func TestHandshakeErrorNamesRemote(t *testing.T) {
	i, r := pair(t, "tcp")
	errI, _ := both(t, i, r, tokenA, tokenB)
	if errI == nil || !strings.Contains(errI.Error(), r.LocalAddr().String()) {
		t.Errorf("error %v does not name the remote address %s", errI, r.LocalAddr())
	}
}

func TestHandshakeRejectsShortToken(t *testing.T) {
	i, _ := net.Pipe()
	defer i.Close()
	err := Handshake(context.Background(), i, "short", true)
	if !errors.Is(err, ErrTokenTooShort) {
		t.Fatalf("got %v, want ErrTokenTooShort", err)
	}
}

// TestHandshakeGarbage feeds each role bytes that are not a handshake.
func TestHandshakeGarbage(t *testing.T) {
	garbage := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	for _, initiator := range []bool{true, false} {
		i, peer := pair(t, "tcp")
		go func() { _, _ = peer.Write(garbage); _, _ = io.Copy(io.Discard, peer) }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := Handshake(ctx, i, tokenA, initiator)
		cancel()
		if !errors.Is(err, ErrBadToken) {
			t.Errorf("initiator=%v: got %v, want ErrBadToken", initiator, err)
		}
	}
}

// TestHandshakeSilentPeer: a peer that accepts and says nothing cannot hold
// the handshake past the context's deadline.
func TestHandshakeSilentPeer(t *testing.T) {
	for _, initiator := range []bool{true, false} {
		i, _ := pair(t, "tcp")
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		err := Handshake(ctx, i, tokenA, initiator)
		cancel()
		if err == nil {
			t.Fatalf("initiator=%v: handshake with a silent peer succeeded", initiator)
		}
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("initiator=%v: got %v, want a deadline error", initiator, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("initiator=%v: returned after %v, deadline was 200ms", initiator, d)
		}
	}
}

// TestHandshakeCancel: cancelling ctx interrupts a blocked handshake.
func TestHandshakeCancel(t *testing.T) {
	i, _ := pair(t, "pipe") // nobody reads the other end: the write blocks
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Handshake(ctx, i, tokenA, true) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handshake ignores cancellation")
	}
}
