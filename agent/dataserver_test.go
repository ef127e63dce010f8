package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

const swarmToken = "drove-swarm-test-token-0001"

func startData(t *testing.T) *DataServer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := StartDataServer(ctx, DataConfig{Name: "data-test", Host: "127.0.0.1", Token: swarmToken}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Shutdown)
	return d
}

func connectData(t *testing.T, url, token string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	user, pass := clusterauth.NATSData(token)
	nc, err := nats.Connect(url, append([]nats.Option{nats.UserInfo(user, pass), nats.NoReconnect()}, opts...)...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

func TestDataServerAuthAndPermissions(t *testing.T) {
	d := startData(t)
	if d.Port() <= 0 {
		t.Fatalf("Port = %d, want the bound port", d.Port())
	}
	if _, err := connectData(t, d.ClientURL(), swarmToken+"x"); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with another cluster's token: err = %v, want an authorization error", err)
	}
	perm := make(chan error, 4)
	nc, err := connectData(t, d.ClientURL(), swarmToken,
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { perm <- err }))
	if err != nil {
		t.Fatal(err)
	}
	if nc.MaxPayload() != DataMaxPayload {
		t.Errorf("max payload = %d, want %d", nc.MaxPayload(), DataMaxPayload)
	}
	// Swarm subjects work, with a unit-sized payload.
	sub, err := nc.SubscribeSync(protocol.SwarmHaveSubject("d1"))
	if err != nil {
		t.Fatal(err)
	}
	before := d.OutBytes()
	payload := make([]byte, protocol.TransferUnit)
	if err := nc.Publish(protocol.SwarmHaveSubject("d1"), payload); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || len(m.Data) != len(payload) {
		t.Fatalf("swarm subject: got %v, %v", m, err)
	}
	if got := d.OutBytes() - before; got < int64(len(payload)) {
		t.Errorf("OutBytes grew by %d, want at least %d", got, len(payload))
	}
	// Anything else is refused: the data user may not reach control
	// subjects even on its own endpoint.
	if err := nc.Publish(protocol.APISubject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-perm:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("publish to %s: async error %v, want a permission violation", protocol.APISubject, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("publish to %s was not refused", protocol.APISubject)
	}
}
