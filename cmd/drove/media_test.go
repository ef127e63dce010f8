package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drove-project/drove/deploy/media"
	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/protocol"
)

// Boot media built by the real binary, read back with independent tools
// (xorriso for ISO 9660, mtools for FAT32, tar, sha256sum), and installed
// from a mounted ISO into a bare lab host that then joins the cluster.

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install -y --no-install-recommends xorriso mtools): %v", tool, err)
		}
	}
}

// mediaImage builds a small cluster image into a new data directory and
// writes a token; it returns both.
func mediaImage(t *testing.T, name string) (cli, token string) {
	t.Helper()
	cli = t.TempDir()
	ctxDir := t.TempDir()
	writeTestFile(t, filepath.Join(ctxDir, "Kubefile"), []byte("FROM scratch\nCOPY etc etc\n"), 0o644)
	writeTestFile(t, filepath.Join(ctxDir, "etc", "motd"), []byte("built for media\n"), 0o644)
	drove(t, cli, "build", "-t", name, ctxDir)
	token = filepath.Join(t.TempDir(), "token")
	drove(t, cli, "token", "generate", "-o", token)
	return cli, token
}

// sha256sumCheck runs `sha256sum -c --strict drove/MANIFEST.sha256` in
// dir and checks the tree holds exactly the listed files and the manifest.
func sha256sumCheck(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("sha256sum", "-c", "--strict", "--quiet", media.ManifestPath)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c in %s: %v\n%s", dir, err, out)
	}
	listed, err := os.ReadFile(filepath.Join(dir, media.ManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Count(string(listed), "\n") + 1
	got := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got++
		}
		return err
	})
	if got != want {
		t.Fatalf("%s holds %d files, the manifest lists %d plus itself", dir, got, want-1)
	}
}

// tamperCopy copies the media, changes one byte of index.json's content
// (the image's name is only there) and returns the copy.
func tamperCopy(t *testing.T, src, imageName string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(imageName))
	if i < 0 {
		t.Fatalf("%q not found in %s", imageName, src)
	}
	b[i] ^= 0x20
	dst := filepath.Join(t.TempDir(), "tampered"+filepath.Ext(src))
	writeTestFile(t, dst, b, 0o644)
	return dst
}

// checkVerify runs drove media verify: it must pass on the media and name
// index.json on a tampered copy.
func checkVerify(t *testing.T, cli, out, imageName string) {
	t.Helper()
	if got := drove(t, cli, "media", "verify", out); !strings.Contains(got, "files match") {
		t.Fatalf("media verify %s: %s", out, got)
	}
	bad := tamperCopy(t, out, imageName)
	got, err := droveRun(t, time.Minute, cli, "media", "verify", bad)
	want := "MISMATCH  " + media.ImageDir + "/index.json"
	if err == nil || !strings.Contains(got, want) || strings.Count(got, "MISMATCH") != 1 {
		t.Fatalf("media verify of a tampered copy: %v, want exit 1 naming only index.json (%q):\n%s", err, want, got)
	}
}

func TestMediaISOReadsBackWithXorriso(t *testing.T) {
	needTools(t, "xorriso", "sha256sum")
	cli, token := mediaImage(t, "media-iso:1")
	out := filepath.Join(t.TempDir(), "drove.iso")
	drove(t, cli, "media", "build", "--image", "media-iso:1", "--join", "10.0.0.1", "--token-file", token, "--format", "iso", "-o", out)

	dir := t.TempDir()
	run(t, exec.Command("xorriso", "-indev", out, "-osirrox", "on", "-extract", "/", dir))
	sha256sumCheck(t, dir)
	// Rock Ridge keeps modes: install.sh runs, the token stays private.
	if st, err := os.Stat(filepath.Join(dir, media.InstallSh)); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("install.sh from the ISO: %v, %v; want mode 755", st, err)
	}
	if st, err := os.Stat(filepath.Join(dir, media.TokenFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token from the ISO: %v, %v; want mode 600", st, err)
	}
	toc, _ := exec.Command("xorriso", "-indev", out, "-toc").CombinedOutput()
	for _, want := range []string{"Rock_Ridge", "Joliet", "Volume id    : 'DROVE'"} {
		if !strings.Contains(string(toc), want) {
			t.Errorf("xorriso -toc does not show %q:\n%s", want, toc)
		}
	}
	checkVerify(t, cli, out, "library/media-iso:1")
}

func TestMediaRawReadsBackWithMtools(t *testing.T) {
	needTools(t, "mcopy", "mlabel", "sha256sum")
	cli, token := mediaImage(t, "media-raw:1")
	out := filepath.Join(t.TempDir(), "drove.img")
	drove(t, cli, "media", "build", "--image", "media-raw:1", "--join", "10.0.0.1", "--token-file", token, "--format", "raw", "-o", out)

	part := out + "@@" + strconv.Itoa(media.PartitionOffset)
	dir := t.TempDir()
	cmd := exec.Command("mcopy", "-s", "-n", "-i", part, "::/", dir)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		// mtools warns about an inconsistent FAT on stderr (the go-diskfs
		// size bug); any output is a failure.
		t.Fatalf("mcopy: %v\n%s", err, out)
	}
	sha256sumCheck(t, dir)
	if label := run(t, exec.Command("mlabel", "-i", part, "-s", "::")); !strings.Contains(string(label), "DROVE") {
		t.Errorf("volume label: %s", label)
	}
	checkVerify(t, cli, out, "library/media-raw:1")
}

func TestMediaTarRoundTrip(t *testing.T) {
	needTools(t, "tar", "sha256sum")
	cli, token := mediaImage(t, "media-tar:1")
	out := filepath.Join(t.TempDir(), "drove.tar")
	drove(t, cli, "media", "build", "--image", "media-tar:1", "--join", "10.0.0.1", "--token-file", token, "-o", out)
	dir := t.TempDir()
	run(t, exec.Command("tar", "-C", dir, "-xf", out))
	sha256sumCheck(t, dir)
	// The extracted tree verifies too, as mounted media would.
	if got := drove(t, cli, "media", "verify", dir); !strings.Contains(got, "(directory): all") {
		t.Fatalf("media verify %s: %s", dir, got)
	}
	checkVerify(t, cli, out, "library/media-tar:1")
}

// mountISO mounts an ISO read-only at a new directory: a loop mount where
// the kernel reads ISO 9660, else through fuseiso.
func mountISO(t *testing.T, iso string) string {
	t.Helper()
	mnt := t.TempDir()
	fsTypes, _ := os.ReadFile("/proc/filesystems")
	var mount, umount []string
	switch {
	case strings.Contains(string(fsTypes), "iso9660"):
		mount, umount = []string{"mount", "-o", "loop,ro", iso, mnt}, []string{"umount", mnt}
	default:
		if _, err := exec.LookPath("fuseiso"); err != nil {
			t.Skip("this kernel cannot mount ISO 9660 and fuseiso is not installed (apt-get install fuseiso)")
		}
		mount, umount = []string{"fuseiso", iso, mnt}, []string{"fusermount", "-u", mnt}
	}
	run(t, exec.Command(mount[0], mount[1:]...))
	t.Cleanup(func() {
		if out, err := exec.Command(umount[0], umount[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(umount, " "), err, out)
		}
	})
	return mnt
}

// TestMediaInstallJoinsLab: the ISO, mounted, installs an agent on a bare
// lab host with install.sh (under a root prefix); the agent starts, joins
// the lab's cluster and shows in drove status; uninstall stops it.
func TestMediaInstallJoinsLab(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process lab test (-short)")
	}
	if os.Geteuid() != 0 {
		t.Skip("media install into a lab host: needs root (network and mount namespaces, mount)")
	}
	needTools(t, "ip", "unshare", "sha256sum")
	cli, _ := mediaImage(t, "media-lab:1")
	iso := filepath.Join(t.TempDir(), "drove.iso")
	l := upLab(t, lab.Options{Dir: t.TempDir(), Binary: droveBin, Masters: 1, Bare: 1, NetNS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	m1, _ := l.Node("m1")
	h1, _ := l.Node("h1")
	token := filepath.Join(l.Dir, "token")
	drove(t, cli, "media", "build", "--image", "media-lab:1", "--join", m1.Addr, "--token-file", token,
		"--labels", "source=media", "--format", "iso", "-o", iso)
	mnt := mountISO(t, iso)

	prefix := t.TempDir()
	install, err := l.Command(ctx, "h1", "sh", filepath.Join(mnt, media.InstallSh))
	if err != nil {
		t.Fatal(err)
	}
	install.Env = append(os.Environ(), "ROOT="+prefix)
	out, err := install.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "agent started") {
		t.Fatalf("install.sh on h1: %v\n%s", err, out)
	}
	t.Logf("install.sh on h1:\n%s", out)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(prefix, "var/log/drove-agent.log"))
			t.Logf("--- h1 agent log ---\n%s", b)
		}
	})

	member := waitMember(t, cli, l, h1.Addr, 60*time.Second)
	if member.Labels["source"] != "media" || member.Roles[0] != "node" {
		t.Errorf("h1's member: %+v; want the media's labels and roles", member)
	}
	cfg, _ := os.ReadFile(filepath.Join(prefix, "etc/drove/agent.yaml"))
	if !strings.Contains(string(cfg), "media: "+filepath.Join(mnt, media.ImageDir)) {
		t.Errorf("agent.yaml does not record the media's image:\n%s", cfg)
	}

	uninstall, err := l.Command(ctx, "h1", filepath.Join(prefix, "usr/local/bin/drove"), "agent", "uninstall", "--root", prefix)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := uninstall.CombinedOutput(); err != nil || !strings.Contains(string(out), "stopped the agent") {
		t.Fatalf("uninstall on h1: %v\n%s", err, out)
	}
	waitFor(t, "h1 to leave the cluster", 30*time.Second, func() bool {
		m, ok := memberAt(cli, l, h1.Addr)
		return ok && m.State != "alive"
	})
}

// memberAt finds the member at addr in drove status.
func memberAt(cli string, l *lab.Lab, addr string) (protocol.Member, bool) {
	cmd := exec.Command(droveBin, "--data-dir", cli, "status", "-o", "json",
		"--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token"))
	b, err := cmd.Output()
	if err != nil {
		return protocol.Member{}, false
	}
	var st protocol.Status
	if json.Unmarshal(b, &st) != nil {
		return protocol.Member{}, false
	}
	for _, m := range st.Members {
		if m.Address == addr {
			return m, true
		}
	}
	return protocol.Member{}, false
}

// waitMember polls drove status until the agent at addr is an alive,
// registered member.
func waitMember(t *testing.T, cli string, l *lab.Lab, addr string, d time.Duration) protocol.Member {
	t.Helper()
	var m protocol.Member
	deadline := time.Now().Add(d)
	for {
		var ok bool
		if m, ok = memberAt(cli, l, addr); ok && m.State == "alive" && m.Registered {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("no alive, registered member at %s in drove status after %s (last: %+v)", addr, d, m)
		}
		time.Sleep(250 * time.Millisecond) // polling interval
	}
}
