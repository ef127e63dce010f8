package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

// newTestAPILBAction returns an action on dataDir with fast health checks,
// closed when the test ends.
func newTestAPILBAction(t *testing.T, dataDir string) *APILBAction {
	t.Helper()
	m := NewAPILBAction(dataDir, testLogger(t))
	m.configure = func(lb *APILB) { lb.Interval, lb.Timeout = 50*time.Millisecond, time.Second }
	t.Cleanup(m.Close)
	return m
}

// runAPILB runs one apilb step and fails the test if it fails.
func runAPILB(t *testing.T, m *APILBAction, env map[string]string) map[string]string {
	t.Helper()
	var out bytes.Buffer
	code, outputs, err := m.Run(context.Background(), protocol.Action{Kind: ActionAPILB, Env: env}, &out)
	if err != nil || code != 0 {
		t.Fatalf("apilb step %v: code %d, err %v, output %q", env, code, err, out.String())
	}
	return outputs
}

// greeting dials addr and returns the name the backend greets with.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial the balancer at %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	name, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no greeting through the balancer at %s: %v", addr, err)
	}
	return strings.TrimSuffix(name, "\n")
}

// noBalancer checks that no balancer forwards from addr any more. A dial
// may still connect (another test took the port, or the kernel connected
// the socket to itself), but no backend of these tests greets through it.
func noBalancer(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(300 * time.Millisecond))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if strings.HasPrefix(line, "act-") {
		t.Fatalf("%s still forwards to backend %q", addr, line)
	}
	t.Logf("%s accepted a connection after the balancer stopped, but no backend answered (port reused?)", addr)
}

func TestAPILBActionStartsUpdatesResumesStops(t *testing.T) {
	b1, b2 := startLBEcho(t, "act-b1"), startLBEcho(t, "act-b2")
	dataDir := t.TempDir()
	m := newTestAPILBAction(t, dataDir)

	// Start: every connection reaches b1.
	outs := runAPILB(t, m, map[string]string{EnvAPILBBackends: b1.addr(), EnvAPILBListen: "127.0.0.1:0"})
	addr := outs["listen"]
	if addr == "" || outs["backends"] != b1.addr() || m.Addr().String() != addr {
		t.Fatalf("outputs %v, Addr %v", outs, m.Addr())
	}
	if got := greeting(t, addr); got != "act-b1" {
		t.Fatalf("first connection went to %q, want b1", got)
	}
	saved, err := os.ReadFile(filepath.Join(dataDir, APILBFile))
	if err != nil {
		t.Fatal(err)
	}
	if s, err := ParseAPILBSetting(saved); err != nil || s.Listen != "127.0.0.1:0" || len(s.Backends) != 1 || s.Backends[0] != b1.addr() {
		t.Fatalf("saved setting %s: %+v %v", saved, s, err)
	}

	// Update: the same balancer (same address) now sends to b2 only.
	outs = runAPILB(t, m, map[string]string{EnvAPILBBackends: " " + b2.addr() + " ,", EnvAPILBListen: "127.0.0.1:0"})
	if outs["listen"] != addr {
		t.Fatalf("update moved the balancer from %s to %s", addr, outs["listen"])
	}
	for range 3 {
		if got := greeting(t, addr); got != "act-b2" {
			t.Fatalf("after the update a connection went to %q, want b2", got)
		}
	}
	// Repeating the step changes nothing.
	if outs := runAPILB(t, m, map[string]string{EnvAPILBBackends: b2.addr(), EnvAPILBListen: "127.0.0.1:0"}); outs["listen"] != addr {
		t.Fatalf("repeat moved the balancer to %s", outs["listen"])
	}

	// The agent restarts: the balancer comes back from apilb.json.
	m.Close()
	if m.Addr() != nil {
		t.Fatal("balancer still running after Close")
	}
	noBalancer(t, addr)
	var out bytes.Buffer
	if _, _, err := m.Run(context.Background(), protocol.Action{Kind: ActionAPILB, Env: map[string]string{EnvAPILBBackends: b1.addr()}}, &out); !errors.Is(err, ErrAPILBClosed) {
		t.Fatalf("step after Close: %v", err)
	}
	m2 := newTestAPILBAction(t, dataDir)
	if err := m2.Resume(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m2.Addr() == nil {
		t.Fatal("Resume did not start the balancer")
	}
	addr = m2.Addr().String()
	if got := greeting(t, addr); got != "act-b2" {
		t.Fatalf("after resume a connection went to %q, want b2", got)
	}

	// Stop: empty backends. Nothing listens, nothing is resumed later.
	if outs := runAPILB(t, m2, map[string]string{EnvAPILBBackends: ""}); outs["listen"] != "" {
		t.Fatalf("stop outputs %v", outs)
	}
	if m2.Addr() != nil {
		t.Fatal("balancer still running after the stop step")
	}
	noBalancer(t, addr)
	if _, err := os.Stat(filepath.Join(dataDir, APILBFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("setting file left after stop: %v", err)
	}
	m3 := newTestAPILBAction(t, dataDir)
	if err := m3.Resume(context.Background()); err != nil || m3.Addr() != nil {
		t.Fatalf("resume after stop: %v, %v", err, m3.Addr())
	}
	// Stopping what is stopped succeeds.
	runAPILB(t, m3, map[string]string{})
}

func TestAPILBActionFailoverAndMove(t *testing.T) {
	b1, b2 := startLBEcho(t, "act-b1"), startLBEcho(t, "act-b2")
	m := newTestAPILBAction(t, t.TempDir())
	outs := runAPILB(t, m, map[string]string{EnvAPILBBackends: b1.addr() + "," + b2.addr(), EnvAPILBListen: "127.0.0.1:0"})
	addr := outs["listen"]
	seen := map[string]bool{}
	for range 4 {
		seen[greeting(t, addr)] = true
	}
	if !seen["act-b1"] || !seen["act-b2"] {
		t.Fatalf("connections reached %v, want both backends", seen)
	}
	b1.kill()
	for range 3 {
		if got := greeting(t, addr); got != "act-b2" {
			t.Fatalf("with b1 down a connection went to %q", got)
		}
	}

	// A new listen address: a new balancer there, the old one gone.
	outs = runAPILB(t, m, map[string]string{EnvAPILBBackends: b2.addr(), EnvAPILBListen: "127.0.0.2:0"})
	if !strings.HasPrefix(outs["listen"], "127.0.0.2:") {
		t.Fatalf("moved to %q", outs["listen"])
	}
	if got := greeting(t, outs["listen"]); got != "act-b2" {
		t.Fatalf("moved balancer sent to %q", got)
	}
	noBalancer(t, addr)
}

func TestAPILBActionRefusals(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	b := startLBEcho(t, "act-b")
	dataDir := t.TempDir()
	m := newTestAPILBAction(t, dataDir)
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"backend without port", map[string]string{EnvAPILBBackends: "10.0.0.1"}, "not host:port"},
		{"backend port 0", map[string]string{EnvAPILBBackends: "10.0.0.1:0"}, "port"},
		{"bad listen", map[string]string{EnvAPILBBackends: b.addr(), EnvAPILBListen: "nowhere"}, EnvAPILBListen},
		{"listen taken", map[string]string{EnvAPILBBackends: b.addr(), EnvAPILBListen: busy.Addr().String()}, "something else listening"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			code, _, err := m.Run(context.Background(), protocol.Action{Kind: ActionAPILB, Env: c.env}, &out)
			if err == nil || code == 0 || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("code %d, err %v; want %q", code, err, c.want)
			}
		})
	}
	if m.Addr() != nil {
		t.Error("a refused step left a balancer running")
	}
	if _, err := os.Stat(filepath.Join(dataDir, APILBFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused step saved its setting: %v", err)
	}

	// A corrupt setting file is reported by Resume, not fatal.
	if err := os.WriteFile(filepath.Join(dataDir, APILBFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := newTestAPILBAction(t, dataDir).Resume(context.Background()); err == nil || !strings.Contains(err.Error(), APILBFile) {
		t.Fatalf("corrupt file: %v", err)
	}
}

func TestAPILBSettingFromEnv(t *testing.T) {
	s, err := APILBSettingFromEnv(map[string]string{EnvAPILBBackends: "10.0.0.1:6443, 10.0.0.2:6443,,10.0.0.1:6443", EnvAPILBListen: ""})
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != DefaultAPILBListen || strings.Join(s.Backends, ",") != "10.0.0.1:6443,10.0.0.2:6443" {
		t.Fatalf("%+v", s)
	}
	if s, err := APILBSettingFromEnv(map[string]string{EnvAPILBBackends: "[fd00::1]:6443"}); err != nil || s.Backends[0] != "[fd00::1]:6443" {
		t.Fatalf("IPv6: %+v %v", s, err)
	}
}

func FuzzAPILBSetting(f *testing.F) {
	f.Add([]byte(`{"listen":"127.0.0.1:6443","backends":["10.0.0.1:6443","10.0.0.2:6443"]}`))
	f.Add([]byte(`{"listen":"","backends":[]}`))
	f.Add([]byte(`{"listen":"[::1]:0","backends":["a:1","a:1"]}`))
	f.Add([]byte(`{"backends":["10.0.0.1"]}`))
	f.Add([]byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseAPILBSetting(b)
		if err != nil {
			return
		}
		// A setting that reads is one an apilb step could have made: the
		// same setting comes back from its env.
		env := map[string]string{EnvAPILBListen: s.Listen, EnvAPILBBackends: strings.Join(s.Backends, ",")}
		again, err := APILBSettingFromEnv(env)
		if err != nil {
			t.Fatalf("setting %+v read from a file is refused from env: %v", s, err)
		}
		if again.Listen != s.Listen || strings.Join(again.Backends, ",") != strings.Join(s.Backends, ",") {
			t.Fatalf("file %+v, env %+v", s, again)
		}
	})
}

func FuzzAPILBSettingFromEnv(f *testing.F) {
	f.Add("10.0.0.1:6443,10.0.0.2:6443", "")
	f.Add(" , ,", "127.0.0.1:0")
	f.Add("[fd00::1]:6443", "[::1]:6443")
	f.Add("a:b", "x")
	f.Fuzz(func(t *testing.T, backends, listen string) {
		s, err := APILBSettingFromEnv(map[string]string{EnvAPILBBackends: backends, EnvAPILBListen: listen})
		if err != nil {
			return
		}
		if strings.TrimSpace(listen) == "" && s.Listen != DefaultAPILBListen {
			t.Fatalf("listen %q without a setting", s.Listen)
		}
		seen := map[string]bool{}
		for _, b := range s.Backends {
			if seen[b] || b == "" || strings.ContainsAny(b, ", ") {
				t.Fatalf("backends %q from %q", s.Backends, backends)
			}
			seen[b] = true
		}
		// What the step accepts, the setting file keeps.
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseAPILBSetting(b)
		if err != nil || again.Listen != s.Listen || strings.Join(again.Backends, ",") != strings.Join(s.Backends, ",") {
			t.Fatalf("setting %+v does not read back: %+v %v", s, again, err)
		}
	})
}
