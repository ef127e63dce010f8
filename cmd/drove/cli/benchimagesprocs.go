package cli

// The daemons `drove bench images` runs inside lab network namespaces:
// the upstream registry (Debian's docker-registry) on a bare host, and
// one containerd per node. Each is started with `ip netns exec`, which
// execs the daemon: the process is the daemon's own, so stopping it stops
// the daemon.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/drove-project/drove/internal/testcontainerd"
)

// registryBinary is the upstream registry the baseline pulls from.
const registryBinary = "/usr/bin/docker-registry"

// benchRegistryPort is the registry's port on its host's address.
const benchRegistryPort = 5000

// daemonReadyTimeout bounds how long a daemon may take to answer.
const daemonReadyTimeout = time.Minute

// daemonStopTimeout is how long a daemon gets after SIGTERM.
const daemonStopTimeout = 10 * time.Second

// nsDaemon is a daemon running in a lab network namespace.
type nsDaemon struct {
	name   string // for messages: "registry on h1", "containerd on n3"
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startInNamespace runs argv in network namespace ns with its output in
// logPath and this process's environment (less REGISTRY_*) plus env. The
// daemon dies with this process.
func startInNamespace(name, ns, logPath string, env []string, argv ...string) (*nsDaemon, error) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("start %s: network namespaces need ip (iproute2): %w", name, err)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(ip, append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// REGISTRY_* variables would override the registry's config file.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &nsDaemon{name: name, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	return d, nil
}

// waitReady polls ready until it succeeds, the daemon exits, ctx ends or
// daemonReadyTimeout passes; errors carry the end of the daemon's log.
func (d *nsDaemon) waitReady(ctx context.Context, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, daemonReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited before it was ready (%s); its log %s ends:\n%s", d.name, d.cmd.ProcessState, d.log, d.tail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %v; its log %s ends:\n%s", d.name, daemonReadyTimeout, err, d.log, d.tail())
		case <-tick.C:
		}
	}
}

// tail is the end of the daemon's log.
func (d *nsDaemon) tail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return fmt.Sprintf("(cannot read it: %v)", err)
	}
	const keep = 2000
	if len(b) > keep {
		b = b[len(b)-keep:]
	}
	return string(b)
}

// stop sends SIGTERM, then SIGKILL after daemonStopTimeout, and waits.
// Calling it again is fine.
func (d *nsDaemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(daemonStopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

// startBenchRegistry runs the upstream registry in namespace ns, serving
// on addr:benchRegistryPort from storage under dir, and returns once it
// answers GET /v2/ from this (the root) namespace, through the lab bridge.
func startBenchRegistry(ctx context.Context, ns, addr, dir string) (*nsDaemon, string, error) {
	if _, err := os.Stat(registryBinary); err != nil {
		return nil, "", fmt.Errorf("the baseline needs a registry: %s (apt-get install docker-registry): %w", registryBinary, err)
	}
	host := net.JoinHostPort(addr, strconv.Itoa(benchRegistryPort))
	storage := filepath.Join(dir, "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return nil, "", fmt.Errorf("create registry storage: %w", err)
	}
	cfg := map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": "warn", "accesslog": map[string]any{"disabled": true}},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": storage},
			"redirect":    map[string]any{"disable": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
		"http": map[string]any{"addr": host, "secret": "drove-bench-images"},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("encode registry config: %w", err)
	}
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		return nil, "", fmt.Errorf("write registry config: %w", err)
	}
	d, err := startInNamespace("the registry", ns, filepath.Join(dir, "registry.log"), nil, registryBinary, "serve", conf)
	if err != nil {
		return nil, "", err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	err = d.waitReady(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		d.stop()
		return nil, "", err
	}
	return d, host, nil
}

// startNodeContainerd runs a containerd for dir (internal/testcontainerd's
// layout and config) in namespace ns and returns once its socket answers.
func startNodeContainerd(ctx context.Context, node, ns, dir string) (*nsDaemon, error) {
	cmd, _, err := testcontainerd.Command(dir)
	if err != nil {
		return nil, fmt.Errorf("containerd for %s: %w", node, err)
	}
	l := testcontainerd.LayoutFor(dir)
	// One thread of Go code per daemon, as the agents: many runtimes
	// share this machine's cores.
	d, err := startInNamespace("containerd on "+node, ns, l.LogPath, []string{"GOMAXPROCS=1"}, cmd.Args...)
	if err != nil {
		return nil, err
	}
	err = d.waitReady(ctx, func(ctx context.Context) error {
		if _, err := os.Stat(l.Address); err != nil {
			return err
		}
		out, err := exec.CommandContext(ctx, testcontainerd.CtrBinary, "--address", l.Address, "version").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr version: %w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	if err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// removeContainerdDir removes a stopped containerd's files, its socket
// directory included when that lives elsewhere.
func removeContainerdDir(dir string) error {
	return errors.Join(os.RemoveAll(testcontainerd.SocketDir(dir)), os.RemoveAll(dir))
}

// vethSent is how many bytes the host behind the root-namespace end of a
// lab link has sent: what that end received.
func vethSent(veth string) (int64, error) {
	p := filepath.Join("/sys/class/net", veth, "statistics", "rx_bytes")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, fmt.Errorf("read the link counter %s: %w", p, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read the link counter %s: %w", p, err)
	}
	return n, nil
}
