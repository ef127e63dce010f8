package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/drove-project/drove/coordinator"
	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/protocol"
)

// fakeCoord is a real NATS server with a stand-in coordinator on the API
// subject: it answers status, revision and plan requests from what the
// test set, and records every plan submitted. The CLI talks to it exactly
// as to a real cluster.
type fakeCoord struct {
	URL       string
	TokenFile string

	mu        sync.Mutex
	members   []protocol.Member
	revision  protocol.ClusterRevision
	submits   []protocol.PlanSubmit
	planState func(protocol.PlanSubmit) protocol.PlanDetail // nil: every step succeeded
}

func startFakeCoord(t *testing.T) *fakeCoord {
	t.Helper()
	token, err := clusterauth.GenerateToken()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns, err := coordinator.StartNATS(ctx, coordinator.NATSConfig{ServerName: "fake", Host: "127.0.0.1", ClusterHost: "127.0.0.1", Token: token}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	user, pass := clusterauth.NATSCoordinator(token)
	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(user, pass))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	f := &fakeCoord{URL: ns.ClientURL(), TokenFile: filepath.Join(t.TempDir(), "token")}
	if err := os.WriteFile(f.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := nc.QueueSubscribe(protocol.APISubject, protocol.APIQueue, func(m *nats.Msg) {
		b, err := protocol.Encode(f.answer(m.Data))
		if err != nil {
			t.Errorf("fake coordinator: %v", err)
			return
		}
		m.Respond(b)
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// args are the client flags that reach the fake.
func (f *fakeCoord) args() []string { return []string{"--server", f.URL, "--token-file", f.TokenFile} }

func (f *fakeCoord) setMembers(ms ...protocol.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = ms
}

func (f *fakeCoord) submitted() []protocol.PlanSubmit {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]protocol.PlanSubmit(nil), f.submits...)
}

func (f *fakeCoord) answer(data []byte) protocol.Message {
	req, err := protocol.Decode(data)
	if err != nil {
		return protocol.Errorf(protocol.CodeBadRequest, "%v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r := req.(type) {
	case *protocol.StatusRequest:
		return &protocol.Status{Members: f.members, Leader: "m1", Voters: []string{"m1"}}
	case *protocol.ClusterGetRequest:
		rev := f.revision
		return &rev
	case *protocol.PlanSubmit:
		f.submits = append(f.submits, *r)
		return &protocol.PlanSubmitted{PlanID: r.PlanID}
	case *protocol.PlanGetRequest:
		for _, s := range f.submits {
			if s.PlanID != r.PlanID {
				continue
			}
			d := succeeded(s)
			if f.planState != nil {
				d = f.planState(s)
			}
			if d.Summary.State == "succeeded" && s.Revision != nil && f.revision.PlanID != s.PlanID {
				serial := f.revision.Serial + 1
				f.revision = *s.Revision
				f.revision.Serial = serial
			}
			return &d
		}
		return protocol.Errorf(protocol.CodeNotFound, "no plan %q", r.PlanID)
	case *protocol.DistributionStatusRequest:
		return &protocol.DistributionStatus{}
	}
	return protocol.Errorf(protocol.CodeBadRequest, "%s is not an API request", req.Type())
}

// succeeded is the detail of a plan whose every step succeeded on every
// node it names.
func succeeded(s protocol.PlanSubmit) protocol.PlanDetail {
	d := protocol.PlanDetail{Summary: protocol.PlanSummary{ID: s.PlanID, Name: s.Plan.Name, State: "succeeded"}}
	for _, ph := range s.Plan.Phases {
		ps := protocol.PhaseStatus{Name: ph.Name}
		for _, st := range ph.Steps {
			for _, n := range st.Target.Nodes {
				ps.Steps = append(ps.Steps, protocol.NodeStepStatus{Step: st.Name, Node: n, State: protocol.StateSucceeded})
			}
		}
		d.Phases = append(d.Phases, ps)
		d.Summary.Steps += len(ps.Steps)
		d.Summary.Succeeded += len(ps.Steps)
	}
	return d
}
