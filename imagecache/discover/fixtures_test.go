package discover

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// fixtureDir holds sealer's own build test fixtures (see shared/README.md).
const fixtureDir = "../../../shared/reference/sealer-fixtures/test/suites/build/fixtures"

// TestSealerFixtures lays out the rootfs each fixture's Kubefile builds
// (COPY of a directory copies its contents, APP copies into
// application/apps/<name>/) and checks the images found against lists
// written by hand from the fixtures' imageList and app.yaml files.
func TestSealerFixtures(t *testing.T) {
	if _, err := os.Stat(fixtureDir); err != nil {
		t.Skipf("no sealer fixtures under %s: %v", fixtureDir, err)
	}
	const (
		busybox = "docker.io/library/busybox:latest"
		nginx   = "docker.io/library/nginx:alpine"
	)
	for _, tc := range []struct {
		fixture    string
		copies     [][2]string // fixture path → rootfs directory, as the Kubefile says
		imageLists []string    // fixture paths given as --image-list
		want       []Image     // Source "FLAG:" is the fixture path given as --image-list
	}{
		{
			// COPY app.yaml manifests/; COPY imageList manifests/
			fixture: "build_with_cmds",
			copies:  [][2]string{{"app.yaml", "manifests"}, {"imageList", "manifests"}},
			want: []Image{
				{busybox, "", "manifests/imageList:1"},
				{nginx, "", "manifests/app.yaml:32"},
			},
		},
		{
			// COPY imageList manifests/; APP myapp local://app.yaml
			fixture: "build_with_launch",
			copies:  [][2]string{{"imageList", "manifests"}, {"app.yaml", "application/apps/myapp"}},
			want: []Image{
				{busybox, "", "manifests/imageList:1"},
				{nginx, "myapp", "application/apps/myapp/app.yaml:32"},
			},
		},
		{
			// APP yamlapp local://yamlcontext (namespaces only); APP shellapp
			// local://shellcontext; APP mixedapp local://install.sh
			// local://mixedcontext
			fixture: "build_with_appcmds",
			copies: [][2]string{
				{"yamlcontext", "application/apps/yamlapp"},
				{"shellcontext", "application/apps/shellapp"},
				{"install.sh", "application/apps/mixedapp"},
				{"mixedcontext", "application/apps/mixedapp"},
			},
			want: []Image{{nginx, "mixedapp", "application/apps/mixedapp/app.yaml:32"}},
		},
		{
			// COPY ${ARCH}/bin bin; APP myapp local://app.yaml. Its
			// "imagelist" (lower case) is not copied in.
			fixture: "build_with_multi_arch",
			copies:  [][2]string{{"amd64/bin", "bin"}, {"app.yaml", "application/apps/myapp"}},
			want:    []Image{{nginx, "myapp", "application/apps/myapp/app.yaml:32"}},
		},
		{
			// FROM scratch, built with --image-list imagelist.
			fixture:    "build_with_imagelist_flag",
			imageLists: []string{"imagelist"},
			want:       []Image{{busybox, "", "--image-list FLAG:1"}},
		},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			src := filepath.Join(fixtureDir, tc.fixture)
			root := t.TempDir()
			for _, c := range tc.copies {
				copyInto(t, filepath.Join(src, c[0]), filepath.Join(root, filepath.FromSlash(c[1])))
			}
			var o Options
			for _, l := range tc.imageLists {
				o.ImageLists = append(o.ImageLists, filepath.Join(src, l))
			}
			res, err := Discover(context.Background(), root, o)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			for i := range want {
				if want[i].Source == "--image-list FLAG:1" {
					want[i].Source = "--image-list " + o.ImageLists[0] + ":1"
				}
			}
			if !reflect.DeepEqual(res.Images, want) {
				t.Errorf("Images:\n%s\nwant\n%s", fmtImages(res.Images), fmtImages(want))
			}
			if len(res.Warnings) != 0 {
				t.Errorf("warnings: %q", res.Warnings)
			}
		})
	}
}

// copyInto copies file or directory src into directory dst as COPY does:
// a file keeps its name, a directory's contents are copied, over files
// already there.
func copyInto(t *testing.T, src, dst string) {
	t.Helper()
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() {
		writeFile(t, src, filepath.Join(dst, filepath.Base(src)))
		return
	}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		writeFile(t, p, filepath.Join(dst, rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// writeFile copies file src to dst, making dst's directory.
func writeFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
