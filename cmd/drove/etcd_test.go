package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/layers/render"
	"github.com/drove-project/drove/protocol"
)

// The etcd example (examples/etcd-cluster): a plain-runtime cluster image
// that installs a real etcd cluster, one member per master.

// etcdExample is the example's directory.
var etcdExample = filepath.Join("..", "..", "examples", "etcd-cluster")

// etcdBin holds the etcd and etcdctl the example packs (Debian's
// etcd-server and etcd-client).
const etcdBin = "/usr/bin"

// TestEtcdEnvTemplate renders etc/etcd.env.tmpl as drove's render step
// does, for three members and for one: each host gets its own name and
// URLs and the whole initial cluster.
func TestEtcdEnvTemplate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members string
		hostIP  string
		cluster string
	}{
		{"three", "10.0.0.11;10.0.0.12;10.0.0.13", "10.0.0.12",
			"etcd-10.0.0.11=http://10.0.0.11:2380,etcd-10.0.0.12=http://10.0.0.12:2380,etcd-10.0.0.13=http://10.0.0.13:2380"},
		{"one", "10.0.0.11", "10.0.0.11", "etcd-10.0.0.11=http://10.0.0.11:2380"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := etcdRootfs(t, tc.hostIP, tc.members)
			got := readEnvFile(t, filepath.Join(rootfs, "etc", "etcd.env"))
			want := map[string]string{
				"ETCD_NAME":                        "etcd-" + tc.hostIP,
				"ETCD_LISTEN_PEER_URLS":            "http://" + tc.hostIP + ":2380",
				"ETCD_LISTEN_CLIENT_URLS":          "http://" + tc.hostIP + ":2379,http://127.0.0.1:2379",
				"ETCD_ADVERTISE_CLIENT_URLS":       "http://" + tc.hostIP + ":2379",
				"ETCD_INITIAL_ADVERTISE_PEER_URLS": "http://" + tc.hostIP + ":2380",
				"ETCD_INITIAL_CLUSTER":             tc.cluster,
				"ETCD_INITIAL_CLUSTER_TOKEN":       "test",
				"ETCD_INITIAL_CLUSTER_STATE":       "new",
				"ETCD_LOGGER":                      "zap",
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if len(got) != len(want) {
				t.Errorf("etcd.env sets %d variables, want %d: %v", len(got), len(want), got)
			}
		})
	}
}

// TestEtcdClusterfile: the example Clusterfile and the one clusterfile.sh
// writes for other hosts both read as three masters with the member list
// in the env and the start hook on the masters after host init.
func TestEtcdClusterfile(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("needs bash: %v", err)
	}
	ips := []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"}
	cmd := exec.Command("bash", append([]string{filepath.Join(etcdExample, "clusterfile.sh")}, ips...)...)
	cmd.Env = append(os.Environ(), "IMAGE=reg.example/etcd:v9", "ETCD_DATA=/srv/etcd")
	generated, err := cmd.Output()
	if err != nil {
		t.Fatalf("clusterfile.sh: %v", err)
	}
	shipped, err := os.ReadFile(filepath.Join(etcdExample, "Clusterfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, image, data string
		text              []byte
		ips               []string
	}{
		{"shipped", "etcd-cluster:v1", "/var/lib/drove-etcd", shipped, []string{"10.0.0.11", "10.0.0.12", "10.0.0.13"}},
		{"generated", "reg.example/etcd:v9", "/srv/etcd", generated, ips},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := clusterfile.Parse("Clusterfile", tc.text)
			if err != nil {
				t.Fatal(err)
			}
			c := f.Cluster
			if c == nil || c.Image != tc.image {
				t.Fatalf("cluster %+v, want image %s", c, tc.image)
			}
			if got := c.Masters(); !slices.Equal(got, tc.ips) || len(c.AllIPs()) != 3 {
				t.Errorf("masters %v (all %v), want %v", got, c.AllIPs(), tc.ips)
			}
			// The env as drove renders templates with it: ";" makes a list.
			env, err := render.ParseEnv(c.Env)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(env["EtcdMembers"], tc.ips) {
				t.Errorf("EtcdMembers %v, want the hosts %v", env["EtcdMembers"], tc.ips)
			}
			if got := env["ETCD_DATA"]; !slices.Equal(got, []string{tc.data}) {
				t.Errorf("ETCD_DATA %v, want %s", got, tc.data)
			}
			if len(f.Plugins) != 1 {
				t.Fatalf("%d plugins, want the start hook", len(f.Plugins))
			}
			p := f.Plugins[0]
			if p.Type != clusterfile.PluginShell || !slices.Equal(p.Phases, []string{clusterfile.HookPostInitHost}) ||
				!slices.Equal(p.On.Roles, []string{clusterfile.RoleMaster}) || strings.TrimSpace(p.Data) != "bash scripts/etcd-start.sh" {
				t.Errorf("hook %+v, want SHELL post-init-host on masters running scripts/etcd-start.sh", p)
			}
			if len(f.Warnings) != 0 {
				t.Errorf("warnings: %v", f.Warnings)
			}
		})
	}
}

// TestEtcdStartRefuses: a rendered etc/etcd.env whose member list lacks
// this host stops etcd-start.sh before it starts anything, with a message
// that says what to fix.
func TestEtcdStartRefuses(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("needs bash: %v", err)
	}
	rootfs := etcdRootfs(t, "10.0.0.11", "10.0.0.12;10.0.0.13")
	data := t.TempDir()
	cmd := exec.Command("bash", "scripts/etcd-start.sh")
	cmd.Dir = rootfs
	cmd.Env = append(os.Environ(), "HostIP=10.0.0.11", "ETCD_DATA="+data)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("etcd-start.sh succeeded for a host missing from EtcdMembers:\n%s", out)
	}
	if !strings.Contains(string(out), "does not list this member (etcd-10.0.0.11)") || !strings.Contains(string(out), "EtcdMembers=") {
		t.Errorf("message does not say what to fix:\n%s", out)
	}
	if ents, _ := os.ReadDir(data); len(ents) != 0 {
		t.Errorf("etcd-start.sh created %v before refusing", ents)
	}
}

// TestEtcdScripts runs the image's scripts on a one-member cluster in a
// private network namespace: start, start again (nothing happens), health,
// stop, start on the old data (the key is still there), clean.
func TestEtcdScripts(t *testing.T) {
	needEtcd(t)
	for _, tool := range []string{"unshare", "nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("etcd scripts test: needs %s: %v", tool, err)
		}
	}
	const ip = "127.0.0.2"
	rootfs := etcdRootfs(t, ip, ip)
	if err := os.Symlink(filepath.Join(etcdBin, "etcd"), filepath.Join(rootfs, "bin", "etcd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(etcdBin, "etcdctl"), filepath.Join(rootfs, "bin", "etcdctl")); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	t.Cleanup(func() { stopEtcdMembers(t, data) })
	member := filepath.Join(data, "etcd-"+ip)
	pidFile := filepath.Join(member, "etcd.pid")
	// sh runs a command in rootfs with the env drove gives hooks; in a new
	// network namespace (pid 0) or in etcd pid's.
	sh := func(pid int, command string) string {
		t.Helper()
		var cmd *exec.Cmd
		if pid == 0 {
			cmd = exec.Command("unshare", "--net", "--", "sh", "-c", "ip link set lo up && "+command)
		} else {
			cmd = exec.Command("nsenter", "--net=/proc/"+strconv.Itoa(pid)+"/ns/net", "--", "sh", "-c", command)
		}
		cmd.Dir = rootfs
		cmd.Env = append(os.Environ(), "HostIP="+ip, "ETCD_DATA="+data, "ETCD_HEALTH_TIMEOUT=30", "ETCDCTL_API=3")
		out, err := cmd.CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(member, "etcd.log"))
			t.Fatalf("%s: %v\n%s\netcd.log:\n%s", command, err, out, log)
		}
		return string(out)
	}
	pidOf := func() int {
		t.Helper()
		pid, err := readPID(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}

	out := sh(0, "bash scripts/etcd-start.sh")
	pid := pidOf()
	if !strings.Contains(out, "is running (pid "+strconv.Itoa(pid)+")") {
		t.Errorf("first start:\n%s", out)
	}
	if out := sh(pid, "bash scripts/etcd-start.sh"); !strings.Contains(out, "already running (pid "+strconv.Itoa(pid)+")") {
		t.Errorf("second start:\n%s", out)
	}
	if n := fileLines(filepath.Join(member, "starts")); n != 1 {
		t.Errorf("%d starts recorded after start, start again; want 1", n)
	}
	if out := sh(pid, "bash scripts/etcd-health.sh"); !strings.Contains(out, "http://"+ip+":2379 is healthy") {
		t.Errorf("health:\n%s", out)
	}
	sh(pid, "bin/etcdctl --endpoints http://"+ip+":2379 put kept-key kept-value")

	if out := sh(pid, "bash scripts/etcd-stop.sh"); !strings.Contains(out, "stopped") {
		t.Errorf("stop:\n%s", out)
	}
	if !isZombieOrGone(pid) {
		t.Fatalf("etcd pid %d still runs after etcd-stop.sh", pid)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after stop: %v", err)
	}

	sh(0, "bash scripts/etcd-start.sh")
	pid2 := pidOf()
	if pid2 == pid {
		t.Fatalf("restart kept pid %d", pid)
	}
	if n := fileLines(filepath.Join(member, "starts")); n != 2 {
		t.Errorf("%d starts recorded after a restart, want 2", n)
	}
	sh(pid2, "bash scripts/etcd-health.sh")
	if got := strings.TrimSpace(sh(pid2, "bin/etcdctl --endpoints http://"+ip+":2379 get kept-key --print-value-only")); got != "kept-value" {
		t.Errorf("after a restart kept-key = %q, want kept-value", got)
	}

	sh(pid2, "bash scripts/clean.sh")
	if !isZombieOrGone(pid2) {
		t.Errorf("etcd pid %d still runs after clean.sh", pid2)
	}
	if _, err := os.Stat(member); !os.IsNotExist(err) {
		t.Errorf("member directory after clean.sh: %v", err)
	}
}

// TestEtcdClusterInstall installs the example on a 3-node netns lab with
// `drove apply`, then checks the etcd cluster from the root namespace: all
// three members healthy, a key written through member 1 read through
// member 3. A second identical apply runs nothing; drove delete stops and
// removes every member.
func TestEtcdClusterInstall(t *testing.T) {
	cli, l, ips := etcdLab(t)
	// Members keep data and logs here; they are stopped before it goes.
	etcdData := t.TempDir()
	t.Cleanup(func() { stopEtcdMembers(t, etcdData) })

	gen := exec.Command("bash", append([]string{filepath.Join(etcdExample, "clusterfile.sh")}, ips...)...)
	gen.Env = append(os.Environ(), "ETCD_DATA="+etcdData)
	cf := filepath.Join(t.TempDir(), "Clusterfile")
	if err := os.WriteFile(cf, run(t, gen), 0o644); err != nil {
		t.Fatal(err)
	}
	apply := func(t *testing.T) string {
		t.Helper()
		return droveCtx(t, 5*time.Minute, cli, "apply", "-f", cf,
			"--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token"))
	}
	var pids []int
	installed := t.Run("install", func(t *testing.T) {
		t.Logf("drove apply:\n%s", apply(t))

		endpoint := "http://" + ips[0] + ":2379"
		health := etcdctl(t, endpoint, "endpoint", "health", "--cluster")
		for _, ip := range ips {
			if !strings.Contains(health, "http://"+ip+":2379 is healthy") {
				t.Errorf("member %s is not healthy:\n%s", ip, health)
			}
		}
		key, value := "drove-etcd-test", "written-through-"+ips[0]
		etcdctl(t, endpoint, "put", key, value)
		if got := strings.TrimSpace(etcdctl(t, "http://"+ips[2]+":2379", "get", key, "--print-value-only")); got != value {
			t.Errorf("get %s through %s = %q, want %q", key, ips[2], got, value)
		}
		pids = etcdPIDs(t, etcdData, ips)
		for _, ip := range ips {
			if n := fileLines(filepath.Join(etcdData, "etcd-"+ip, "starts")); n != 1 {
				t.Errorf("member %s was started %d times, want once", ip, n)
			}
		}
	})
	if !installed {
		return
	}

	// The same Clusterfile again: nothing to do, so no plan runs a step
	// and the members keep running as they were.
	t.Run("second apply runs nothing", func(t *testing.T) {
		nc := connect(t, l)
		var before protocol.PlanList
		call(t, nc, &protocol.PlanListRequest{}, &before)
		t.Logf("second drove apply:\n%s", apply(t))
		var after protocol.PlanList
		call(t, nc, &protocol.PlanListRequest{}, &after)
		for _, p := range after.Plans {
			if !slices.ContainsFunc(before.Plans, func(b protocol.PlanSummary) bool { return b.ID == p.ID }) && p.Steps > 0 {
				t.Errorf("the second apply ran plan %s %q (%d node-steps)", p.ID, p.Name, p.Steps)
			}
		}
		if got := etcdPIDs(t, etcdData, ips); !slices.Equal(got, pids) {
			t.Errorf("etcd pids %v after the second apply, were %v", got, pids)
		}
		for _, ip := range ips {
			if n := fileLines(filepath.Join(etcdData, "etcd-"+ip, "starts")); n != 1 {
				t.Errorf("after the second apply member %s was started %d times, want once", ip, n)
			}
		}
	})

	// drove delete runs the image's scripts/clean.sh on every host.
	t.Run("delete stops every member", func(t *testing.T) {
		t.Logf("drove delete:\n%s", droveCtx(t, 2*time.Minute, cli, "delete", "--all", "--force",
			"--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token")))
		for i, ip := range ips {
			if !isZombieOrGone(pids[i]) {
				t.Errorf("member %s (pid %d) still runs after drove delete", ip, pids[i])
			}
			if _, err := os.Stat(filepath.Join(etcdData, "etcd-"+ip)); !os.IsNotExist(err) {
				t.Errorf("member %s's directory after drove delete: %v", ip, err)
			}
		}
	})
}

// needEtcd skips the test unless it runs as root (network namespaces)
// with Debian's etcd and etcdctl installed.
func needEtcd(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("etcd example: needs root for network namespaces")
	}
	for _, b := range []string{"etcd", "etcdctl"} {
		if _, err := os.Stat(filepath.Join(etcdBin, b)); err != nil {
			t.Skipf("etcd example: %s/%s is missing (apt-get install etcd-server etcd-client): %v", etcdBin, b, err)
		}
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("etcd example: needs bash: %v", err)
	}
}

// etcdRootfs is the example image's rootfs without binaries (bin/ is
// empty), its etc/etcd.env rendered for the host at hostIP of the members
// in the list members ("a;b;c"), as drove's render step does.
func etcdRootfs(t *testing.T, hostIP, members string) string {
	t.Helper()
	rootfs := t.TempDir()
	for _, d := range []string{"etc", "scripts"} {
		copyTree(t, filepath.Join(etcdExample, d), filepath.Join(rootfs, d))
	}
	if err := os.Mkdir(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	env, err := render.ParseEnv([]string{"EtcdClusterToken=test", "EtcdMembers=" + members, "HostIP=" + hostIP})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := render.RenderTree(context.Background(), rootfs, env); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// droveCtx runs drove with a time limit and returns its stdout (stderr is
// logged); a failure ends the test.
func droveCtx(t *testing.T, limit time.Duration, dataDir string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, droveBin, append([]string{"--data-dir", dataDir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("drove %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	if errb.Len() > 0 {
		t.Logf("drove %s stderr:\n%s", args[0], errb.String())
	}
	return out.String()
}

// run runs cmd and returns its stdout; a failure ends the test.
func run(t *testing.T, cmd *exec.Cmd) []byte {
	t.Helper()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, errb.String())
	}
	return out
}

// etcdctl runs the host's etcdctl against endpoint (from the root
// namespace, across the lab's bridge).
func etcdctl(t *testing.T, endpoint string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(etcdBin, "etcdctl"),
		append([]string{"--endpoints", endpoint, "--dial-timeout", "5s", "--command-timeout", "10s"}, args...)...)
	cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("etcdctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// etcdPIDs reads the members' pid files, in the order of ips.
func etcdPIDs(t *testing.T, dataDir string, ips []string) []int {
	t.Helper()
	var pids []int
	for _, ip := range ips {
		pid, err := readPID(filepath.Join(dataDir, "etcd-"+ip, "etcd.pid"))
		if err != nil {
			t.Fatalf("member %s: %v", ip, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// stopEtcdMembers stops the etcd processes the example started under
// dataDir, by the pids in their pid files (checked to still be etcd):
// they run detached from the agents, so stopping the lab leaves them.
func stopEtcdMembers(t *testing.T, dataDir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dataDir, "*", "etcd.pid"))
	var live []int
	for _, f := range files {
		pid, err := readPID(f)
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("etcd")) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGTERM); err == nil {
			live = append(live, pid)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range live {
		for !isZombieOrGone(pid) {
			if time.Now().After(deadline) {
				t.Logf("etcd pid %d ignored SIGTERM for 10 s: killing it", pid)
				syscall.Kill(pid, syscall.SIGKILL)
				break
			}
			time.Sleep(50 * time.Millisecond) // polling interval while etcd shuts down
		}
	}
}

// isZombieOrGone reports whether pid has exited (etcd's parent is gone,
// so init reaps it; until then it shows as a zombie).
func isZombieOrGone(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// fileLines counts the lines of the file at path (0 if it is missing).
func fileLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// readEnvFile reads KEY=VALUE lines, skipping comments and blank lines.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: line %q is not KEY=VALUE", path, line)
		}
		out[k] = v
	}
	return out
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// etcdLab builds the etcd example image into a new CLI data directory and
// starts a 3-node netns lab (every node a master), ready. It skips the
// test without root or etcd.
func etcdLab(t *testing.T) (cli string, l *lab.Lab, ips []string) {
	t.Helper()
	needEtcd(t)
	cli = t.TempDir()
	ctxDir := filepath.Join(t.TempDir(), "context")
	run(t, exec.Command("bash", filepath.Join(etcdExample, "prepare.sh"), ctxDir))
	drove(t, cli, "build", "-t", "etcd-cluster:v1", ctxDir)
	l = startNetLab(t, 3, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range l.Nodes {
		ips = append(ips, n.Addr)
	}
	return cli, l, ips
}
