package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/drove-project/drove/internal/testcontainerd"
)

// TestBenchImagesReports runs a small `drove bench images` end to end in
// network namespaces: the registry baseline and drove's run --import both
// complete (the bench itself checks every node's containerd has every
// image at its digest, unpacked), and the table carries both times, the
// slowest node of each side and their ratio (the numbers themselves are
// for people, not for assertions on a shared machine).
func TestBenchImagesReports(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, tc and containerd")
	}
	for _, b := range []string{testcontainerd.Binary, testcontainerd.CtrBinary, "/usr/bin/docker-registry"} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("needs %s (Debian packages containerd, docker-registry)", b)
		}
	}
	out := droveCtx(t, 5*time.Minute, t.TempDir(), "bench", "images", "--netns", "--nodes", "2", "--images", "2", "--size", "4MiB")
	t.Logf("bench images:\n%s", out)
	num := `([0-9]+\.[0-9]+)`
	for _, re := range []string{
		`t_registry: +` + num + ` s \(p50 [0-9.]+ s, slowest n[23]\); the registry sent`,
		`t_drove: +` + num + ` s \(p50 [0-9.]+ s, slowest n[23]; delivered and unpacked on every node after [0-9.]+ s, drove run returned after [0-9.]+ s\); the seed sent`,
		`ratio: +t_registry / t_drove = ` + num,
	} {
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("report lacks %q:\n%s", re, out)
		}
		if v, err := strconv.ParseFloat(m[1], 64); err != nil || v <= 0 {
			t.Fatalf("%q: %q is no positive number:\n%s", re, m[1], out)
		}
	}
}
