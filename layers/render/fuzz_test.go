package render

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/drove-project/drove/protocol"
)

// FuzzMergeDocuments: merging never panics; a result parses back, is the
// same on a second run, and does not change when the overlay is merged
// into it again.
func FuzzMergeDocuments(f *testing.F) {
	f.Add([]byte(kubeadmBase), []byte("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.0.0.0/8\n"))
	f.Fuzz(func(t *testing.T, base, overlay []byte) {
		out, err := MergeDocuments(base, overlay)
		if err != nil {
			return
		}
		if _, err := ParseDocuments(out); err != nil {
			t.Fatalf("result does not parse: %v\n%s", err, out)
		}
		again, err := MergeDocuments(base, overlay)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("second run differs (%v):\n%s\n---\n%s", err, out, again)
		}
		twice, err := MergeDocuments(out, overlay)
		if err != nil {
			t.Fatalf("merging the overlay into the result: %v", err)
		}
		// An overlay document that names no kind goes into every document;
		// if it renames them (metadata.name or namespace, as sealer's
		// "put this namespace everywhere" does) the overlay's other
		// documents match differently the second time.
		if !renamesAll(t, overlay) && !sameYAML(t, twice, out) {
			t.Fatalf("merging the overlay twice changed the result:\n%s\n---\n%s", out, twice)
		}
	})
}

// sameYAML compares the documents of a and b as values (formatting and
// comments aside).
func sameYAML(t *testing.T, a, b []byte) bool {
	da, err := ParseDocuments(a)
	if err != nil {
		t.Fatal(err)
	}
	db, err := ParseDocuments(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(da) != len(db) {
		return false
	}
	for i := range da {
		var va, vb any
		if da[i].Decode(&va) != nil || db[i].Decode(&vb) != nil {
			return bytes.Equal(a, b)
		}
		if !reflect.DeepEqual(va, vb) {
			return false
		}
	}
	return true
}

// FuzzParseEnv: parsing never panics; an Env parsed reads back from its
// Entries, and Shell has the same keys.
func FuzzParseEnv(f *testing.F) {
	f.Add("CertSANs=a\nCertSANs=b\nIP=1;2")
	f.Fuzz(func(t *testing.T, s string) {
		env, err := ParseEnv(strings.Split(s, "\n"))
		if err != nil {
			return
		}
		back, err := ParseEnv(env.Entries())
		if err != nil {
			t.Fatalf("Entries %q do not parse: %v", env.Entries(), err)
		}
		if !reflect.DeepEqual(back, env) {
			t.Fatalf("round trip %v -> %v", env, back)
		}
		if sh := env.Shell(); len(sh) != len(env) {
			t.Fatalf("Shell has %d keys, env %d", len(sh), len(env))
		}
		if _, err := Derive(env); err != nil && env.Get(KeySvcCIDR) == "" {
			t.Fatalf("Derive failed without a SvcCIDR: %v", err)
		}
	})
}

// FuzzApplyConfigs: applying a Config to a small rootfs never panics,
// never writes outside the rootfs, and a refused Config changes nothing.
func FuzzApplyConfigs(f *testing.F) {
	f.Add("etc/x.yaml", "", "a: 1\n", "merge", "", []byte("a: 0\nb: 1\n"))
	f.Fuzz(func(t *testing.T, path, app, data, strategy, process string, existing []byte) {
		dir := t.TempDir()
		root := filepath.Join(dir, "rootfs")
		outside := filepath.Join(dir, "outside")
		for _, d := range []string{filepath.Join(root, "etc"), outside} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "etc", "x.yaml"), existing, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../outside", filepath.Join(root, "etc", "out")); err != nil {
			t.Fatal(err)
		}
		cfg := protocol.ConfigFile{Path: path, AppName: app, Data: data, Strategy: strategy}
		if process != "" {
			cfg.Process = strings.Split(process, ",")
		}
		before := snapshot(t, root)
		err := ApplyConfigs(context.Background(), root, []protocol.ConfigFile{cfg})
		if entries, _ := os.ReadDir(outside); len(entries) != 0 {
			t.Fatalf("Config %+v wrote outside the rootfs: %v", cfg, entries)
		}
		if err != nil {
			if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
				t.Fatalf("refused Config %+v (%v) changed files", cfg, err)
			}
			return
		}
		if verr := ValidateConfig(cfg); verr != nil {
			t.Fatalf("ApplyConfigs took %+v that ValidateConfig refuses: %v", cfg, verr)
		}
	})
}

// renamesAll reports whether an overlay has a document with neither
// apiVersion nor kind that sets metadata.name or metadata.namespace.
func renamesAll(t *testing.T, overlay []byte) bool {
	docs, err := ParseDocuments(overlay)
	if err != nil {
		t.Fatalf("overlay that merged does not parse: %v", err)
	}
	for _, d := range docs {
		if valueAt(d, "apiVersion") != nil || valueAt(d, "kind") != nil {
			continue
		}
		if meta := valueAt(d, "metadata"); meta != nil && meta.Kind == yaml.MappingNode && (valueAt(meta, "name") != nil || valueAt(meta, "namespace") != nil) {
			return true
		}
	}
	return false
}
