package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/internal/sshpush"
	"github.com/drove-project/drove/protocol"
)

// `drove run` onto hosts that run no agent: the lab's bare hosts, each a
// network namespace with its own /var/lib/drove and /usr/local/bin and a
// real OpenSSH server. The CLI must log in, push the agent, see it join
// and install the image; a wrong key must stop it before any plan.

const sshdBin = "/usr/sbin/sshd"

// bareHost is one bare lab host with its sshd.
type bareHost struct {
	node *lab.Node
	dir  string // sshd's config, host key and log
}

func TestRunPushesAgentsOverSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("drove run over SSH: needs root (network and mount namespaces, sshd)")
	}
	if _, err := os.Stat(sshdBin); err != nil {
		t.Skipf("drove run over SSH: needs %s (apt-get install openssh-server): %v", sshdBin, err)
	}
	for _, tool := range []string{"ip", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("drove run over SSH: needs %s: %v", tool, err)
		}
	}
	l := upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 1, Bare: 2, NetNS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m1, _ := l.Node("m1")

	keys := t.TempDir()
	goodPub, goodKey := sshKeyPair(t)
	_, strangerKey := sshKeyPair(t)
	goodFile, strangerFile := filepath.Join(keys, "id_good"), filepath.Join(keys, "id_stranger")
	writeTestFile(t, goodFile, goodKey, 0o600)
	writeTestFile(t, strangerFile, strangerKey, 0o600)
	authorized := filepath.Join(keys, "authorized_keys")
	writeTestFile(t, authorized, ssh.MarshalAuthorizedKey(goodPub), 0o644)

	var hosts []bareHost
	var hostIPs []string
	for _, name := range []string{"h1", "h2"} {
		h := startBareSSHD(t, l, name, authorized)
		hosts = append(hosts, h)
		hostIPs = append(hostIPs, h.node.Addr)
	}

	// A plain image: its init.sh runs on every host, in that host's
	// rootfs; its CMDS once, on master0 (m1).
	cli := t.TempDir()
	cmdLog := filepath.Join(t.TempDir(), "cmd.log")
	imgCtx := t.TempDir()
	cmds, _ := json.Marshal([]string{`echo "cmd ran on $HostIP" >> ` + cmdLog})
	writeTestFile(t, filepath.Join(imgCtx, "Kubefile"), []byte("FROM scratch\n"+
		"LABEL cluster.alpha.sealer.io/cluster-runtime-type=plain\n"+
		"COPY etc etc\nCOPY scripts scripts\nCMDS "+string(cmds)+"\n"), 0o644)
	writeTestFile(t, filepath.Join(imgCtx, "etc", "hello"), []byte("hello\n"), 0o644)
	writeTestFile(t, filepath.Join(imgCtx, "scripts", "init.sh"), []byte(`echo "$HostIP" > etc/init-ran`+"\n"), 0o755)
	drove(t, cli, "build", "-t", "ssh-plain:1", imgCtx)

	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	// sealer's one line takes a password: root's on both hosts (in their
	// own /etc/shadow) is rootPassword.
	for _, h := range hosts {
		setRootPassword(t, h.node, rootPassword)
	}
	runWith := func(cred ...string) (string, error) {
		args := append([]string{"run", "ssh-plain:1", "--masters", m1.Addr, "--nodes", strings.Join(hostIPs, ",")}, cred...)
		args = append(args, "--known-hosts", knownHosts, "--agent-wait", "90s",
			"--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token"))
		return droveRun(t, 5*time.Minute, cli, args...)
	}
	nc := connect(t, l)

	t.Run("wrong key submits nothing", func(t *testing.T) {
		out, err := runWith("--pk", strangerFile)
		if err == nil {
			t.Fatalf("drove run with a key the hosts refuse succeeded:\n%s", out)
		}
		t.Logf("drove run with the wrong key:\n%s", out)
		for _, ip := range hostIPs {
			if want := "host " + ip + ": ssh root@" + ip + ":22: public key " + strangerFile + " rejected"; !strings.Contains(out, want) {
				t.Errorf("the error does not say %q:\n%s", want, out)
			}
		}
		for _, want := range []string{"nothing was submitted", "give credentials those hosts accept"} {
			if !strings.Contains(out, want) {
				t.Errorf("the error does not say %q:\n%s", want, out)
			}
		}
		var pl protocol.PlanList
		call(t, nc, &protocol.PlanListRequest{}, &pl)
		if len(pl.Plans) != 0 {
			t.Errorf("plans after a refused login: %+v", pl.Plans)
		}
		var rev protocol.ClusterRevision
		call(t, nc, &protocol.ClusterGetRequest{}, &rev)
		if rev.Serial != 0 {
			t.Errorf("a revision was recorded after a refused login: %+v", rev)
		}
		for _, h := range hosts {
			if _, err := os.Stat(h.node.PrivatePath(sshpush.DefaultRemoteBinary)); !os.IsNotExist(err) {
				t.Errorf("%s: a binary was pushed with the wrong key: %v", h.node.Name, err)
			}
		}
	})
	if t.Failed() {
		return
	}

	type pushed struct {
		pid          int
		stamp, bin   time.Time
		stampContent string
	}
	first := map[string]pushed{}
	installed := t.Run("install", func(t *testing.T) {
		out, err := runWith("-p", rootPassword)
		if err != nil {
			t.Fatalf("drove run: %v\n%s", err, out)
		}
		t.Logf("drove run:\n%s", out)
		if !strings.Contains(out, "installing the drove agent over SSH on 2 hosts") {
			t.Errorf("drove run did not say it installs the agent on both hosts:\n%s", out)
		}

		members := statusMembers(t, cli, l)
		for _, h := range hosts {
			ip := h.node.Addr
			m, ok := members["node-"+strings.ReplaceAll(ip, ".", "-")]
			if !ok || m.State != "alive" || m.Address != ip {
				t.Errorf("%s: drove status shows %+v (found %v), want an alive member at %s", h.node.Name, m, ok, ip)
			}
		}

		// Each host ran init.sh in its own rootfs, under its own
		// /var/lib/drove: not this machine's.
		for _, h := range hosts {
			got, err := filepath.Glob(filepath.Join(h.node.PrivatePath(sshpush.DefaultDataDir), "rootfs", "*", "etc", "init-ran"))
			if err != nil || len(got) != 1 {
				t.Errorf("%s: init.sh results %v %v, want one", h.node.Name, got, err)
				continue
			}
			if b, _ := os.ReadFile(got[0]); strings.TrimSpace(string(b)) != h.node.Addr {
				t.Errorf("%s: init.sh wrote %q, want its address %s", h.node.Name, b, h.node.Addr)
			}
			hex := filepath.Base(filepath.Dir(filepath.Dir(got[0])))
			if _, err := os.Stat(filepath.Join(sshpush.DefaultDataDir, "rootfs", hex)); !os.IsNotExist(err) {
				t.Errorf("%s unpacked the image into this machine's %s: %v", h.node.Name, sshpush.DefaultDataDir, err)
			}
		}
		if b, err := os.ReadFile(cmdLog); err != nil || string(b) != "cmd ran on "+m1.Addr+"\n" {
			t.Errorf("CMDS log %q (%v), want one line from %s", b, err, m1.Addr)
		}

		// The agents run in the hosts' namespaces, from the pushed binary.
		selfMnt := nsID(t, "/proc/self/ns/mnt")
		for _, h := range hosts {
			dataDir := h.node.PrivatePath(sshpush.DefaultDataDir)
			pid, err := readPID(filepath.Join(dataDir, "agent.pid"))
			if err != nil {
				t.Errorf("%s: %v", h.node.Name, err)
				continue
			}
			argv := procArgs(t, pid)
			if len(argv) == 0 || argv[0] != sshpush.DefaultRemoteBinary || !slices.Contains(argv, "node-"+strings.ReplaceAll(h.node.Addr, ".", "-")) {
				t.Errorf("%s: pid %d runs %q, want the pushed agent", h.node.Name, pid, argv)
			}
			if got, want := nsID(t, fmt.Sprintf("/proc/%d/ns/net", pid)), nsID(t, filepath.Join("/var/run/netns", h.node.NetNS)); got != want {
				t.Errorf("%s: the agent runs in network namespace %d, want the host's %d", h.node.Name, got, want)
			}
			if nsID(t, fmt.Sprintf("/proc/%d/ns/mnt", pid)) == selfMnt {
				t.Errorf("%s: the agent runs in this machine's mount namespace", h.node.Name)
			}
			stampFile := filepath.Join(dataDir, "agent.stamp")
			stamp, _ := os.ReadFile(stampFile)
			first[h.node.Name] = pushed{pid: pid, stamp: mtime(t, stampFile),
				bin: mtime(t, h.node.PrivatePath(sshpush.DefaultRemoteBinary)), stampContent: string(stamp)}
		}
	})
	if !installed {
		return
	}

	t.Run("second run pushes nothing", func(t *testing.T) {
		out, err := runWith("-p", rootPassword)
		if err != nil {
			t.Fatalf("second drove run: %v\n%s", err, out)
		}
		t.Logf("second drove run:\n%s", out)
		if strings.Contains(out, "installing the drove agent") || !strings.Contains(out, "up to date") {
			t.Errorf("the second run did more than report the cluster up to date:\n%s", out)
		}
		for _, h := range hosts {
			dataDir := h.node.PrivatePath(sshpush.DefaultDataDir)
			pid, err := readPID(filepath.Join(dataDir, "agent.pid"))
			stamp, _ := os.ReadFile(filepath.Join(dataDir, "agent.stamp"))
			now := pushed{pid: pid, stamp: mtime(t, filepath.Join(dataDir, "agent.stamp")),
				bin: mtime(t, h.node.PrivatePath(sshpush.DefaultRemoteBinary)), stampContent: string(stamp)}
			was := first[h.node.Name]
			if err != nil || now.pid != was.pid || !now.stamp.Equal(was.stamp) || !now.bin.Equal(was.bin) || now.stampContent != was.stampContent {
				t.Errorf("%s: agent %+v (%v) after the second run, was %+v", h.node.Name, now, err, was)
			}
		}
		if b, _ := os.ReadFile(cmdLog); strings.Count(string(b), "\n") != 1 {
			t.Errorf("CMDS ran again: %q", b)
		}
	})

	// The pushed agents are no process of the lab's: Down must kill them
	// with their hosts' namespaces.
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	for name, p := range first {
		deadline := time.Now().Add(10 * time.Second)
		for !isZombieOrGone(p.pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the pushed agent (pid %d) survived lab down", name, p.pid)
			}
			time.Sleep(20 * time.Millisecond) // polling a process we do not own
		}
	}
}

// startBareSSHD runs OpenSSH's sshd on bare host name, on its address and
// port 22, letting root in with the keys in authorized. It returns once
// the server sends its banner; the host's namespaces end it at lab down.
func startBareSSHD(t *testing.T, l *lab.Lab, name, authorized string) bareHost {
	t.Helper()
	n, err := l.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	h := bareHost{node: n, dir: t.TempDir()}
	_, hostKey := sshKeyPair(t)
	hostKeyFile := filepath.Join(h.dir, "host_ed25519")
	writeTestFile(t, hostKeyFile, hostKey, 0o600)
	cfg := filepath.Join(h.dir, "sshd_config")
	writeTestFile(t, cfg, []byte(strings.Join([]string{
		"Port 22",
		"ListenAddress " + n.Addr,
		"HostKey " + hostKeyFile,
		"AuthorizedKeysFile " + authorized,
		"PidFile " + filepath.Join(h.dir, "sshd.pid"),
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PubkeyAuthentication yes",
		"PasswordAuthentication yes",
		"KbdInteractiveAuthentication no",
		"UseDNS no",
		"MaxStartups 100",
		"MaxSessions 100",
		"LogLevel VERBOSE",
	}, "\n")+"\n"), 0o600)
	if out, err := exec.Command(sshdBin, "-t", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v: %s", err, out)
	}
	// sshd's privilege separation directory; Debian's init script makes it.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(h.dir, "sshd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := l.Command(context.Background(), name, sshdBin, "-D", "-e", "-f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd on %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s sshd log ---\n%s", name, b)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if sshBanner(n.Addr) {
			return h
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("sshd on %s exited:\n%s", name, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("no SSH banner from %s:22 after 15 s:\n%s", n.Addr, b)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// sshBanner reports whether an SSH server answers on ip:22.
func sshBanner(ip string) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "22"), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

// sshKeyPair makes an ed25519 key: the public half, and the private half
// as OpenSSH PEM.
func sshKeyPair(t *testing.T) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "drove test")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, pem.EncodeToMemory(block)
}

// droveRun runs drove with a time limit and returns its stdout and
// stderr together, and its error.
func droveRun(t *testing.T, limit time.Duration, dataDir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, droveBin, append([]string{"--data-dir", dataDir}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// statusMembers is `drove status -o json`'s members by ID.
func statusMembers(t *testing.T, cli string, l *lab.Lab) map[string]protocol.Member {
	t.Helper()
	out := drove(t, cli, "status", "-o", "json", "--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token"))
	var st protocol.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("drove status -o json: %v\n%s", err, out)
	}
	ms := map[string]protocol.Member{}
	for _, m := range st.Members {
		ms[m.ID] = m
	}
	return ms
}

// procArgs is the argv of process pid.
func procArgs(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Errorf("pid %d: %v", pid, err)
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// nsID is the inode of a namespace file (/proc/PID/ns/net, a netns handle).
func nsID(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func mtime(t *testing.T, path string) time.Time {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Errorf("%v", err)
		return time.Time{}
	}
	return st.ModTime()
}

func writeTestFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// rootPassword is root's password on the bare hosts of the SSH test.
const rootPassword = "drove-test-pw"

// setRootPassword gives root password pw in bare host n's own /etc/shadow
// (this machine's is untouched).
func setRootPassword(t *testing.T, n *lab.Node, pw string) {
	t.Helper()
	out, err := exec.Command("openssl", "passwd", "-6", pw).Output()
	if err != nil {
		t.Skipf("password login needs openssl passwd: %v", err)
	}
	hash := strings.TrimSpace(string(out))
	path := n.PrivatePath("/etc/shadow")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, line := range lines {
		if f := strings.Split(line, ":"); len(f) > 2 && f[0] == "root" {
			f[1] = hash
			lines[i], found = strings.Join(f, ":"), true
		}
	}
	if !found {
		t.Fatalf("%s: no root entry", path)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o640); err != nil {
		t.Fatal(err)
	}
}
