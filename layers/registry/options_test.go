package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/drove-project/drove/internal/testregistry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestTransportSkipsVerifyOnlyWhenInsecure(t *testing.T) {
	for _, tc := range []struct {
		host     string
		insecure bool
		skip     bool
	}{
		{"ghcr.io", false, false},
		{"ghcr.io", true, true},
		{"127.0.0.5:5000", false, true},
		{"localhost:5000", false, true},
	} {
		rt := Options{Insecure: tc.insecure}.transport(tc.host)
		ht, ok := rt.(*http.Transport)
		if !ok {
			t.Fatalf("transport(%s) is %T", tc.host, rt)
		}
		got := ht.TLSClientConfig != nil && ht.TLSClientConfig.InsecureSkipVerify
		if got != tc.skip {
			t.Errorf("transport(%s, insecure=%v) skips verify = %v, want %v", tc.host, tc.insecure, got, tc.skip)
		}
	}
	if dt := remote.DefaultTransport.(*http.Transport); dt.TLSClientConfig != nil && dt.TLSClientConfig.InsecureSkipVerify {
		t.Error("remote.DefaultTransport was modified")
	}
}

func TestLoopbackTLSRegistryWithoutFlag(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{TLS: true, User: "u", Password: "p"})
	ctx := context.Background()
	opts := Options{AuthFile: filepath.Join(t.TempDir(), "config.json")}
	if err := Login(ctx, reg.Host, "u", "p", opts); err != nil {
		t.Fatalf("Login to self-signed loopback registry: %v", err)
	}
	img := randomImage(t, amd64)
	if err := Push(ctx, reg.Ref("tls", ":1"), img, opts); err != nil {
		t.Fatalf("Push: %v", err)
	}
	got, err := Pull(ctx, reg.Ref("tls", ":1"), opts)
	if err != nil || got.Descriptor.Digest != digestOf(t, img) {
		t.Fatalf("Pull: %v", err)
	}
}

func TestCustomTransportNotModified(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Opts{TLS: true})
	pem, err := os.ReadFile(reg.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	opts := Options{AuthFile: filepath.Join(t.TempDir(), "c.json"), Transport: tr, UserAgent: "drove-test"}
	img := randomImage(t, amd64)
	if err := Push(context.Background(), reg.Ref("ca", ":1"), img, opts); err != nil {
		t.Fatalf("Push with a custom transport: %v", err)
	}
	if tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("caller's transport was modified")
	}
}
