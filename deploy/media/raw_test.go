package media

import (
	"fmt"
	"testing"
)

// TestFATLayoutClean: the sizes go-modules.md lists as broken in go-diskfs
// v1.9.4 (a FAT two entries short) are caught, the clean ones pass.
func TestFATLayoutClean(t *testing.T) {
	for _, tc := range []struct {
		size  int64
		clean bool
	}{
		{64 * mib, false}, {129 * mib, false}, {259 * mib, false}, {4 << 30, false},
		{63 * mib, true}, {100 * mib, true}, {256 * mib, true}, {300 * mib, true}, {1 << 30, true},
	} {
		if got := fatLayoutOf(tc.size).clean(); got != tc.clean {
			t.Errorf("%d MiB: clean = %v, want %v (%+v)", tc.size/mib, got, tc.clean, fatLayoutOf(tc.size))
		}
	}
}

// TestFATSizeFor: the chosen size is whole MiB, clean, at least the
// minimum, and has room for every cluster the tree needs.
func TestFATSizeFor(t *testing.T) {
	for _, bytes := range []int64{0, 1 << 20, 61 * mib, 62 * mib, 120 * mib, 255 * mib, 3 << 30} {
		t.Run(fmt.Sprint(bytes), func(t *testing.T) {
			tr := &tree{dirs: []string{"drove", "drove/bin", "drove/image", "drove/image/blobs", "drove/image/blobs/sha256"}}
			for i := range 40 {
				p := fmt.Sprintf("drove/image/blobs/sha256/%064x", i)
				tr.files = append(tr.files, treeFile{p, bytes / 40})
				tr.bytes += bytes / 40
			}
			size, err := fatSizeFor(tr)
			if err != nil {
				t.Fatal(err)
			}
			l := fatLayoutOf(size)
			if size%mib != 0 || size < minFATSize || !l.clean() {
				t.Fatalf("size %d: not whole MiB, too small or not clean (%+v)", size, l)
			}
			if need := tr.clustersNeeded(l.clusterBytes); l.clusters < need || l.clusters*l.clusterBytes < tr.bytes {
				t.Fatalf("size %d: %d clusters, the tree needs %d", size, l.clusters, need)
			}
		})
	}
}
