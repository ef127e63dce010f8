package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"maps"
	"slices"
	"testing"
)

// tarLayer writes a gzipped layer: name → content ("" with a trailing
// slash in the name: a directory).
func tarLayer(t testing.TB, entries ...[2]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg}
		if e[0][len(e[0])-1] == '/' {
			h.Typeflag, h.Size, h.Mode = tar.TypeDir, 0, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestScanLayerWhiteouts(t *testing.T) {
	lower := tarLayer(t,
		[2]string{"etc/", ""},
		[2]string{"etc/kubeadm.yaml", "old"},
		[2]string{"plugins/a.yaml", "a"},
		[2]string{"plugins/b.yaml", "b"},
		[2]string{"plugins/deep/c.yaml", "not a plugin: not directly in plugins/"},
		[2]string{"bin/kubeadm", "#!/bin/sh"},
		[2]string{"Metadata", `{"kubeVersion":"v1.25.3"}`},
	)
	upper := tarLayer(t,
		[2]string{"plugins/.wh.a.yaml", ""},
		[2]string{"bin/.wh..wh..opq", ""},
		[2]string{"bin/kubectl", "x"},
		[2]string{"./etc/kubeadm.yaml", "new"},
	)
	files, has := map[string][]byte{}, map[string]bool{}
	for _, l := range [][]byte{lower, upper} {
		if err := scanLayer(bytes.NewReader(l), files, has, runFile, presenceOnly); err != nil {
			t.Fatal(err)
		}
	}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, []string{"Metadata", "etc/kubeadm.yaml", "plugins/b.yaml"}) {
		t.Errorf("files %v", got)
	}
	if string(files["etc/kubeadm.yaml"]) != "new" {
		t.Errorf("kubeadm.yaml %q: the upper layer's wins", files["etc/kubeadm.yaml"])
	}
	if has["bin/kubeadm"] {
		t.Error("bin/kubeadm is hidden by the opaque whiteout, yet found")
	}
	img := &clusterImage{Files: files, Has: has, Labels: map[string]string{"app.alpha.sealer.io/supported-kube-version": ">=1.22 <1.26"}}
	if v := img.kubeVersion(); v != "v1.25.3" {
		t.Errorf("kube version %q: a range label gives way to Metadata", v)
	}
	img.Labels["app.alpha.sealer.io/supported-kube-version"] = "v1.27.3"
	if v := img.kubeVersion(); v != "v1.27.3" {
		t.Errorf("kube version %q from the label", v)
	}
	if p, b := img.kubeadmDefault(); p != "etc/kubeadm.yaml" || string(b) != "new" {
		t.Errorf("kubeadm default %s %q", p, b)
	}
}

// FuzzScanLayer feeds arbitrary bytes to the layer reader `drove run`
// uses on image layers: it may fail, never panic or read past its limit.
func FuzzScanLayer(f *testing.F) {
	f.Add(tarLayer(f, [2]string{"plugins/a.yaml", "kind: Plugin"}, [2]string{"plugins/.wh.a.yaml", ""}))
	f.Add(tarLayer(f, [2]string{"etc/.wh..wh..opq", ""}, [2]string{"bin/kubeadm", "x"}))
	f.Add([]byte("not a layer"))
	f.Fuzz(func(t *testing.T, b []byte) {
		files, has := map[string][]byte{}, map[string]bool{}
		if err := scanLayer(bytes.NewReader(b), files, has, runFile, presenceOnly); err != nil {
			return
		}
		for p, data := range files {
			if !runFile(p) || len(data) > maxRootfsFile {
				t.Fatalf("kept %s (%d bytes)", p, len(data))
			}
		}
	})
}
