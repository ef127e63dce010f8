package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

// TestLabNodeSideOfApply runs, on real agents, what a run/apply plan asks
// of nodes and coordinators: steps addressed by node address with per-node
// env (NodeEnv), render, shell and write-file in an image's rootfs, the
// apiserver load balancer (and its return after an agent restart), and the
// cluster revision, recorded only when its plan succeeds.
func TestLabNodeSideOfApply(t *testing.T) {
	l := startLab(t, 1, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, l)

	// What a distribute step leaves on every node: the unpacked image.
	hex := strings.Repeat("ab", 32)
	digest := "sha256:" + hex
	for _, n := range l.Nodes {
		tmpl := filepath.Join(n.DataDir, "rootfs", hex, "etc", "node.conf.tmpl")
		if err := os.MkdirAll(filepath.Dir(tmpl), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tmpl, []byte("ip={{.HostIP}} sans={{range .CertSANs}}[{{.}}]{{end}}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The apiserver the balancers forward to.
	api, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	go func() {
		for {
			c, err := api.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "apiserver\n")
			c.Close()
		}
	}()

	var addrs []string
	hostEnv := map[string]map[string]string{}
	lbEnv := map[string]map[string]string{}
	lbAddr := map[string]string{} // node name -> its balancer
	for _, n := range l.Nodes {
		addrs = append(addrs, n.Addr)
		hostEnv[n.Addr] = map[string]string{"HostIP": n.Addr}
		lbAddr[n.Name] = net.JoinHostPort(n.Addr, "16443")
		lbEnv[n.Addr] = map[string]string{"DROVE_APILB_LISTEN": lbAddr[n.Name]}
	}
	target := protocol.Selector{Nodes: addrs}
	spec := protocol.PlanSpec{Name: "apply", Phases: []protocol.PhaseSpec{{Name: "prepare", Steps: []protocol.StepSpec{
		{Name: "render", Target: target, NodeEnv: hostEnv, Action: protocol.Action{Kind: "render", Rootfs: digest,
			Env: map[string]string{"CertSANs": "api.example;10.0.0.1", "HostIP": "unset"}}},
		{Name: "check", Target: target, Action: protocol.Action{Kind: "shell", Rootfs: digest,
			Command: `printf '::drove-output conf=%s\n' "$(cat etc/node.conf)"; printf '::drove-output root=%s\n' "$ROOTFS"`}},
		{Name: "write", Target: target, Action: protocol.Action{Kind: "write-file", Rootfs: digest, Path: "etc/written", Content: "{{.Node}}"}},
		{Name: "apilb", Target: target, NodeEnv: lbEnv, Action: protocol.Action{Kind: "apilb",
			Env: map[string]string{"DROVE_APILB_BACKENDS": api.Addr().String()}}},
	}}}}
	rev := &protocol.ClusterRevision{Clusterfile: "apiVersion: sealer.io/v2\nkind: Cluster\n", Image: "demo:1", ImageDigest: digest, Runtime: "plain"}
	var sub protocol.PlanSubmitted
	call(t, nc, &protocol.PlanSubmit{Plan: spec, Revision: rev}, &sub)
	pd := waitPlan(t, nc, sub.PlanID, 60*time.Second)
	if pd.Summary.State != protocol.StateSucceeded {
		t.Fatalf("plan %s: %+v", pd.Summary.State, pd.Phases)
	}

	byNode := map[string]map[string]protocol.NodeStepStatus{}
	for _, s := range pd.Phases[0].Steps {
		if byNode[s.Step] == nil {
			byNode[s.Step] = map[string]protocol.NodeStepStatus{}
		}
		byNode[s.Step][s.Node] = s
	}
	for _, n := range l.Nodes {
		rootfs := filepath.Join(n.DataDir, "rootfs", hex)
		check := byNode["check"][n.Name]
		if want := "ip=" + n.Addr + " sans=[api.example][10.0.0.1]"; check.Outputs["conf"] != want {
			t.Errorf("%s: rendered %q, want %q", n.Name, check.Outputs["conf"], want)
		}
		if check.Outputs["root"] != rootfs {
			t.Errorf("%s: ROOTFS %q, want %q", n.Name, check.Outputs["root"], rootfs)
		}
		if b, err := os.ReadFile(filepath.Join(rootfs, "etc", "written")); err != nil || string(b) != n.Name {
			t.Errorf("%s: etc/written %q, %v", n.Name, b, err)
		}
		if got := apiGreeting(t, lbAddr[n.Name], 5*time.Second); got != "apiserver" {
			t.Errorf("%s: through the balancer: %q", n.Name, got)
		}
	}

	var got protocol.ClusterRevision
	call(t, nc, &protocol.ClusterGetRequest{}, &got)
	if got.Serial != 1 || got.PlanID != sub.PlanID || got.Image != "demo:1" || got.Clusterfile != rev.Clusterfile || got.Applied == 0 {
		t.Fatalf("applied revision %+v", got)
	}

	// An agent restart brings its balancer back.
	worker := l.Nodes[len(l.Nodes)-1]
	if err := l.Stop(worker.Name); err != nil {
		t.Fatal(err)
	}
	if err := l.Start(worker.Name); err != nil {
		t.Fatal(err)
	}
	if got := apiGreeting(t, lbAddr[worker.Name], 30*time.Second); got != "apiserver" {
		t.Errorf("after restart: %q", got)
	}

	// A plan that fails leaves the revision; its step names the missing image.
	missing := "sha256:" + strings.Repeat("cd", 32)
	bad := protocol.PlanSpec{Name: "apply", Phases: []protocol.PhaseSpec{{Name: "p", Steps: []protocol.StepSpec{
		{Name: "run", Target: protocol.Selector{Nodes: addrs[:1]}, Action: protocol.Action{Kind: "shell", Rootfs: missing, Command: "true"}}}}}}
	rev2 := *rev
	rev2.Image = "demo:2"
	call(t, nc, &protocol.PlanSubmit{Plan: bad, Revision: &rev2}, &sub)
	pd = waitPlan(t, nc, sub.PlanID, 60*time.Second)
	if pd.Summary.State != protocol.StateFailed || !strings.Contains(pd.Phases[0].Steps[0].Error, "distribute it first") {
		t.Fatalf("plan with a missing image: %s %+v", pd.Summary.State, pd.Phases[0].Steps)
	}
	call(t, nc, &protocol.ClusterGetRequest{}, &got)
	if got.Serial != 1 || got.Image != "demo:1" {
		t.Fatalf("revision after a failed plan: %+v", got)
	}
}

// apiGreeting dials addr until it answers (within d) and returns the
// first line it sends.
func apiGreeting(t *testing.T, addr string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if err == nil {
				return strings.TrimSuffix(line, "\n")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer from %s within %s: %v", addr, d, err)
		}
		time.Sleep(50 * time.Millisecond) // polling an agent that is starting
	}
}
