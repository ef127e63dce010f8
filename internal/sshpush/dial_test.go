package sshpush

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestDialKeyAsRootRecordsHostKey(t *testing.T) {
	s := startSSHD(t, false)
	c := s.rootClient(t)
	out, _, err := c.Run(context.Background(), "id -u", nil)
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Fatalf("id -u = %q, %v", out, err)
	}
	kh, err := os.ReadFile(filepath.Join(s.dir, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	want := knownhosts.Line([]string{knownhosts.Normalize("127.0.0.1:" + strconv.Itoa(s.port))}, s.hostKey)
	if strings.TrimSpace(string(kh)) != want {
		t.Fatalf("known_hosts = %q, want the one line %q", kh, want)
	}
	// Known now: a second dial trusts it and adds nothing.
	tg := c.Target()
	s.dial(t, tg)
	kh2, _ := os.ReadFile(filepath.Join(s.dir, "known_hosts"))
	if string(kh2) != string(kh) {
		t.Fatalf("second dial changed known_hosts:\n%s", kh2)
	}
}

func TestDialRefusesChangedHostKey(t *testing.T) {
	s := startSSHD(t, false)
	tg := s.target("root")
	tg.KeyFile = s.newAuthorizedKey(t, "root")
	khFile := filepath.Join(s.dir, "known_hosts")
	other, _ := newKey(t, "")
	host := knownhosts.Normalize("127.0.0.1:" + strconv.Itoa(s.port))
	writeFile(t, khFile, []byte("# another host\n"+knownhosts.Line([]string{host}, other)+"\n"), 0o600)

	_, err := Dial(context.Background(), tg, s.options(t))
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Fatalf("err = %v, want ErrHostKeyChanged", err)
	}
	for _, want := range []string{"127.0.0.1:" + strconv.Itoa(s.port), khFile + " line 2", ssh.FingerprintSHA256(s.hostKey), ssh.FingerprintSHA256(other), "CHANGED"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	b, _ := os.ReadFile(khFile)
	if strings.Contains(string(b), string(ssh.MarshalAuthorizedKey(s.hostKey))[:40]) {
		t.Fatalf("the changed key was recorded:\n%s", b)
	}
}

func TestDialRefusesHostKeyOfOtherType(t *testing.T) {
	s := startSSHD(t, false)
	tg := s.target("root")
	tg.KeyFile = s.newAuthorizedKey(t, "root")
	khFile := filepath.Join(s.dir, "known_hosts")
	// The host was recorded with an ECDSA key; it now offers only ed25519.
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	epub, err := ssh.NewPublicKey(&ek.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	host := knownhosts.Normalize("127.0.0.1:" + strconv.Itoa(s.port))
	writeFile(t, khFile, []byte(knownhosts.Line([]string{host}, epub)+"\n"), 0o600)
	_, err = Dial(context.Background(), tg, s.options(t))
	if !errors.Is(err, ErrHostKeyChanged) || !strings.Contains(err.Error(), khFile) {
		t.Fatalf("err = %v, want ErrHostKeyChanged naming %s", err, khFile)
	}
}

func TestDialAuthErrors(t *testing.T) {
	s := startSSHD(t, false)
	good := s.newAuthorizedKey(t, "root")
	_, stranger := newKey(t, "")
	strangerFile := filepath.Join(t.TempDir(), "stranger")
	writeFile(t, strangerFile, stranger, 0o600)
	encPub, enc := newKey(t, "s3cret")
	encFile := filepath.Join(t.TempDir(), "enc")
	writeFile(t, encFile, enc, 0o600)
	s.authorize(t, "root", encPub)
	dest := "root@127.0.0.1:" + strconv.Itoa(s.port)

	tests := []struct {
		name       string
		key, pass  string
		password   string
		wantErr    string
		wantAuth   bool
		wantNoAuth bool
	}{
		{name: "unknown key", key: strangerFile, wantErr: "ssh " + dest + ": public key " + strangerFile + " rejected", wantAuth: true},
		{name: "password not offered by server", password: "x", wantErr: "ssh " + dest + ": the server accepts none", wantAuth: true},
		{name: "encrypted key, no passphrase", key: encFile, wantErr: "encrypted and no passphrase was given (--pk-passwd)"},
		{name: "encrypted key, wrong passphrase", key: encFile, pass: "nope", wantErr: "wrong passphrase"},
		{name: "missing key file", key: filepath.Join(t.TempDir(), "absent"), wantErr: "read private key"},
		{name: "nothing", wantNoAuth: true, wantErr: "no ssh password or private key"},
		{name: "encrypted key, right passphrase", key: encFile, pass: "s3cret"},
		{name: "good key", key: good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := s.target("root")
			tg.KeyFile, tg.KeyPassphrase, tg.Password = tt.key, tt.pass, tt.password
			c, err := Dial(context.Background(), tg, s.options(t))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to contain %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrAuthRejected) != tt.wantAuth {
				t.Errorf("errors.Is(ErrAuthRejected) = %v, want %v", !tt.wantAuth, tt.wantAuth)
			}
			if errors.Is(err, ErrNoCredentials) != tt.wantNoAuth {
				t.Errorf("errors.Is(ErrNoCredentials) = %v, want %v", !tt.wantNoAuth, tt.wantNoAuth)
			}
		})
	}
}

func TestDialConnectErrors(t *testing.T) {
	dir := t.TempDir()
	opts := Options{KnownHostsFile: filepath.Join(dir, "kh"), Timeout: 5 * time.Second}
	tg := Target{Host: "127.0.0.1", Port: freePort(t), Password: "x"}
	if _, err := Dial(context.Background(), tg, opts); err == nil || !strings.Contains(err.Error(), "connect") ||
		!strings.Contains(err.Error(), tg.Dest()) {
		t.Fatalf("closed port: err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Dial(ctx, tg, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v", err)
	}
}

func TestAuthErrorMessage(t *testing.T) {
	tests := []struct {
		methods []string
		want    string
	}{
		{[]string{"password"}, "ssh root@10.0.0.5:22: password rejected"},
		{[]string{"public key /k", "password"}, "ssh root@10.0.0.5:22: public key /k and password rejected"},
		{nil, "ssh root@10.0.0.5:22: the server accepts none of the offered authentication methods"},
	}
	for _, tt := range tests {
		err := error(&AuthError{Dest: Target{Host: "10.0.0.5"}.Dest(), Methods: tt.methods})
		if err.Error() != tt.want || !errors.Is(err, ErrAuthRejected) {
			t.Errorf("%v: %q (Is=%v), want %q", tt.methods, err, errors.Is(err, ErrAuthRejected), tt.want)
		}
	}
}
