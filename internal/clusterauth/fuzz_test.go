package clusterauth

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzHandshake plays a peer that sends arbitrary bytes and then closes. A
// handshake must neither panic, hang, nor succeed against it.
func FuzzHandshake(f *testing.F) {
	f.Add([]byte{}, true)
	f.Add([]byte(handshakeMagic), false)
	f.Add(make([]byte, nonceSize+macSize), true)
	f.Fuzz(func(t *testing.T, peerBytes []byte, initiator bool) {
		ours, peer := net.Pipe()
		go func() {
			go func() { _, _ = io.Copy(io.Discard, peer) }()
			_, _ = peer.Write(peerBytes)
			peer.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := Handshake(ctx, ours, tokenA, initiator)
		ours.Close()
		if err == nil {
			t.Fatalf("handshake succeeded against %d arbitrary bytes (initiator=%v)", len(peerBytes), initiator)
		}
	})
}
