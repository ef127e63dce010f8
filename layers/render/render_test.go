package render

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/drove-project/drove/protocol"
)

func TestRootfs(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/kubeadm.yaml.tmpl":   "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: {{ .PodCIDR }}\n  serviceSubnet: {{ .SvcCIDR }}\n  dnsIP: {{ .DNSSvcIP }}\n",
		"manifests/app.yaml.tmpl": "image: {{ .Image }}\n",
	})
	env, err := Derive(Merge(Env{"PodCIDR": {"10.244.0.0/16"}}))
	if err != nil {
		t.Fatal(err)
	}
	configs := []protocol.ConfigFile{
		// Patches a rendered file: applies to the fresh output each run.
		{Path: "etc/kubeadm.yaml", Strategy: "merge", Data: "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 172.16.0.0/16\n"},
		{Path: "values.yaml", AppName: "app", Data: "replicas: 3\n"},
	}
	rep, err := Rootfs(context.Background(), root, env, configs)
	if err != nil {
		t.Fatalf("Rootfs: %v", err)
	}
	wantRep := Report{
		Rendered:   []string{"etc/kubeadm.yaml", "manifests/app.yaml"},
		Configured: []string{"etc/kubeadm.yaml", "application/apps/app/values.yaml"},
		Warnings:   []string{`template: manifests/app.yaml.tmpl:1:10: executing "manifests/app.yaml.tmpl" at <.Image>: map has no entry for key "Image"`},
	}
	if !reflect.DeepEqual(rep, wantRep) {
		t.Errorf("report %+v, want %+v", rep, wantRep)
	}
	want := "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 172.16.0.0/16\n  serviceSubnet: 10.96.0.0/22\n  dnsIP: 10.96.0.10\n"
	if got := readFile(t, filepath.Join(root, "etc", "kubeadm.yaml")); got != want {
		t.Errorf("etc/kubeadm.yaml:\n%s\nwant:\n%s", got, want)
	}
	if got := readFile(t, filepath.Join(root, "application", "apps", "app", "values.yaml")); got != "replicas: 3\n" {
		t.Errorf("values.yaml = %q", got)
	}

	before := snapshot(t, root)
	if _, err := Rootfs(context.Background(), root, env, configs); err != nil {
		t.Fatalf("Rootfs again: %v", err)
	}
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("running twice changed files:\n%v\n%v", before, after)
	}
}

// TestRootfsBadConfigWritesNothing: a Config that fails only against the
// rendered content (toSecret on a rendered file with no Secret) still
// leaves every template unrendered.
func TestRootfsBadConfigWritesNothing(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"etc/a.yaml.tmpl":     "kind: {{ .Kind }}\n",
		"etc/other.yaml.tmpl": "x: 1\n",
	})
	before := snapshot(t, root)
	_, err := Rootfs(context.Background(), root, Env{"Kind": {"ConfigMap"}}, []protocol.ConfigFile{
		{Path: "etc/a.yaml", Process: []string{"toSecret"}, Data: "k: v\n"},
	})
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "no document of kind Secret") {
		t.Fatalf("error %v, want ErrBadConfig about the Secret", err)
	}
	if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
		t.Errorf("a failed Rootfs changed files:\n%v\n%v", before, after)
	}
	// With a Secret rendered, the same Config applies.
	rep, err := Rootfs(context.Background(), root, Env{"Kind": {"Secret"}}, []protocol.ConfigFile{
		{Path: "etc/a.yaml", Process: []string{"toSecret"}, Data: "k: v\n"},
	})
	if err != nil {
		t.Fatalf("Rootfs: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "etc", "a.yaml")); got != "kind: Secret\ndata:\n  k: dg==\n" {
		t.Errorf("etc/a.yaml = %q", got)
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings %v", rep.Warnings)
	}
}
