package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/internal/testcontainerd"
	"github.com/drove-project/drove/internal/testimage"
	"github.com/drove-project/drove/internal/testregistry"
	"github.com/drove-project/drove/protocol"
)

// upstreamImages pushes the test's container images to a real registry
// and returns their references with the digests the registry serves:
// an OCI image, a Docker-media-type image, a two-platform index, and
// one only a RUN step pulls.
func upstreamImages(t *testing.T, up *testregistry.Registry) map[string]v1.Hash {
	t.Helper()
	oci := testimage.Spec{Layers: 1, LayerSize: 64 << 10, Arch: "amd64"}
	legacy := testimage.Spec{Layers: 1, LayerSize: 32 << 10, Arch: "amd64", Docker: true}
	out := map[string]v1.Hash{}
	for _, n := range []string{"team/app:v1", "team/pulled:v1"} {
		out[up.Ref(n, "")] = testimage.Push(t, up.Ref(n, ""), testimage.Image(t, oci))
	}
	out[up.Ref("team/legacy:v1", "")] = testimage.Push(t, up.Ref("team/legacy:v1", ""), testimage.Image(t, legacy))
	out[up.Ref("team/multi:v1", "")] = testimage.Push(t, up.Ref("team/multi:v1", ""), testimage.Index(t, oci, "amd64", "arm64"))
	return out
}

// The acceptance test: a cluster image caches three container
// images named by its files and one its RUN step pulled through the build
// mirror; with the upstream registry stopped, it is run on three lab
// nodes, each with its own real containerd: every node has the images
// imported with the upstream digests, and pulls by the original names are
// served by the node's mirror.
func TestContainerImagesOffline(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and containerd")
	}
	for _, b := range []string{testcontainerd.Binary, testcontainerd.CtrBinary, testregistry.Binary, "/usr/bin/skopeo"} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("needs %s (Debian packages containerd, docker-registry, skopeo)", b)
		}
	}
	up := testregistry.Start(t, testregistry.Opts{})
	digests := upstreamImages(t, up)
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]string{
		"Kubefile": "FROM scratch\nCOPY manifests manifests\n" +
			// Nothing names team/pulled: only this RUN step pulls it.
			"RUN skopeo --registries-conf \"$CONTAINERS_REGISTRIES_CONF\" copy docker://" + up.Ref("team/pulled:v1", "") +
			" oci:$(mktemp -d):x && touch pulled\n",
		"manifests/app.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n" +
			"      initContainers:\n      - name: init\n        image: " + up.Ref("team/multi:v1", "") + "\n" +
			"      containers:\n      - name: app\n        image: " + up.Ref("team/app:v1", "") + "\n",
		"manifests/imageList": "# cached though no manifest names it\n" + up.Ref("team/legacy:v1", "") + "\n",
	})
	cli := t.TempDir()
	t.Logf("drove build:\n%s", droveCtx(t, 3*time.Minute, cli, "build", "-t", "offline:v1", ctxDir))
	var inspected struct {
		ContainerImages []struct {
			Image string `json:"image"`
		} `json:"containerImages"`
	}
	if err := json.Unmarshal([]byte(drove(t, cli, "inspect", "offline:v1", "-o", "json")), &inspected); err != nil {
		t.Fatal(err)
	}
	var cached []string
	for _, c := range inspected.ContainerImages {
		cached = append(cached, c.Image)
	}
	var want []string
	for ref := range digests {
		want = append(want, ref)
	}
	slices.Sort(want)
	if !slices.Equal(cached, want) {
		t.Fatalf("cached images %v, want %v", cached, want)
	}
	// An app image caching one more image, for run --mode loadImage.
	extra := up.Ref("team/extra:v1", "")
	extraDigest := testimage.Push(t, extra, testimage.Image(t, testimage.Spec{Layers: 1, LayerSize: 64 << 10, Arch: "amd64"}))
	appCtx := t.TempDir()
	writeTree(t, appCtx, map[string]string{"Kubefile": "FROM scratch\nCOPY imageList manifests/\n", "imageList": extra + "\n"})
	drove(t, cli, "build", "-t", "more-images:v1", appCtx)
	up.Stop()

	// Three netns nodes, each with its own containerd (in its namespace).
	dir := t.TempDir()
	names := []string{"m1", "n1", "n2"}
	ctd := map[string]testcontainerd.Layout{}
	nodeArgs := map[string][]string{}
	for _, n := range names {
		ctd[n] = testcontainerd.LayoutFor(filepath.Join(dir, "ctd-"+n))
		nodeArgs[n] = []string{"--containerd-address", ctd[n].Address}
	}
	l := upLab(t, lab.Options{Dir: filepath.Join(dir, "lab"), Binary: droveBin, Masters: 1, Nodes: 2, NetNS: true, NodeArgs: nodeArgs})
	for _, n := range l.Nodes {
		startContainerdIn(t, n.NetNS, ctd[n.Name].Dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := l.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, n := range l.Nodes {
		ips = append(ips, n.Addr)
	}
	out := droveCtx(t, 3*time.Minute, cli, "run", "offline:v1", "--masters", ips[0], "--nodes", ips[1]+","+ips[2],
		"--import", "--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token"))
	t.Logf("drove run:\n%s", out)

	for _, n := range l.Nodes {
		addr := ctd[n.Name].Address
		ls := ctr(t, "", addr, "-n", "k8s.io", "images", "ls")
		for ref, d := range digests {
			if !containsLine(ls, ref, d.String()) {
				t.Errorf("%s: containerd k8s.io lacks %s at %s:\n%s", n.Name, ref, d, ls)
			}
		}
		// A pull by the original name in another namespace fetches every
		// blob again: only the node's mirror can serve them.
		certs := filepath.Join(n.DataDir, "certs.d")
		for _, ref := range []string{up.Ref("team/app:v1", ""), up.Ref("team/multi:v1", "")} {
			ctr(t, n.NetNS, addr, "-n", "pulltest", "image", "pull", "--hosts-dir", certs, ref)
		}
		if ls := ctr(t, "", addr, "-n", "pulltest", "images", "ls"); !containsLine(ls, up.Ref("team/multi:v1", ""), digests[up.Ref("team/multi:v1", "")].String()) {
			t.Errorf("%s: pulled through the mirror, yet:\n%s", n.Name, ls)
		}
	}

	// loadImage brings the app image's images to the running cluster and
	// leaves the cluster's revision (its image) as it was.
	t.Logf("drove run --mode loadImage:\n%s", droveCtx(t, 3*time.Minute, cli, "run", "more-images:v1", "--mode", "loadImage", "--import",
		"--server", strings.Join(l.Servers(), ","), "--token-file", filepath.Join(l.Dir, "token")))
	for _, n := range l.Nodes {
		if ls := ctr(t, "", ctd[n.Name].Address, "-n", "k8s.io", "images", "ls"); !containsLine(ls, extra, extraDigest.String()) {
			t.Errorf("%s: loadImage did not import %s:\n%s", n.Name, extra, ls)
		}
	}
	var rev protocol.ClusterRevision
	call(t, connect(t, l), &protocol.ClusterGetRequest{}, &rev)
	if rev.Image != "offline:v1" {
		t.Errorf("after loadImage the cluster's image is %q, want offline:v1 still", rev.Image)
	}
}

// startContainerdIn runs a containerd for dir inside network namespace ns
// until the test ends.
func startContainerdIn(t *testing.T, ns, dir string) {
	t.Helper()
	cmd, _, err := testcontainerd.Command(dir)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Args = append([]string{"ip", "netns", "exec", ns}, cmd.Args...)
	cmd.Path = "/usr/sbin/ip"
	if p, err := exec.LookPath("ip"); err == nil {
		cmd.Path = p
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := testcontainerd.LayoutFor(dir).Address
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
		os.RemoveAll(testcontainerd.SocketDir(dir))
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := exec.Command(testcontainerd.CtrBinary, "--address", addr, "version").Run(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd in %s not ready at %s:\n%s", ns, addr, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctr runs ctr against the daemon at addr, in network namespace ns when
// set.
func ctr(t *testing.T, ns, addr string, args ...string) string {
	t.Helper()
	argv := append([]string{testcontainerd.CtrBinary, "--address", addr}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	var out bytes.Buffer
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out.String())
	}
	return out.String()
}

// containsLine reports whether some line of text holds every field.
func containsLine(text string, fields ...string) bool {
	for _, line := range strings.Split(text, "\n") {
		if !slices.ContainsFunc(fields, func(f string) bool { return !strings.Contains(line, f) }) {
			return true
		}
	}
	return false
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
