package registry

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestAuthKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"docker.io", HubAuthKey},
		{"index.docker.io", HubAuthKey},
		{"registry-1.docker.io", HubAuthKey},
		{"https://index.docker.io/v1/", HubAuthKey},
		{"Docker.IO", HubAuthKey},
		{"127.0.0.1:5000", "127.0.0.1:5000"},
		{"http://127.0.0.1:5000/v2/", "127.0.0.1:5000"},
		{"https://Reg.Example.com:443", "reg.example.com:443"},
		{"ghcr.io", "ghcr.io"},
		{"ghcr.io/owner/repo", "ghcr.io"},
		{" quay.io ", "quay.io"},
	} {
		if got := AuthKey(tc.in); got != tc.want {
			t.Errorf("AuthKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAuthFilePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	if got, _ := AuthFilePath(""); got != filepath.Join(home, ".docker", "config.json") {
		t.Errorf("default path = %q", got)
	}
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	if got, _ := AuthFilePath(""); got != filepath.Join(cfgDir, "config.json") {
		t.Errorf("DOCKER_CONFIG path = %q", got)
	}
	if got, _ := AuthFilePath("/x/auth.json"); got != "/x/auth.json" {
		t.Errorf("explicit path = %q", got)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseAuthFileGet(t *testing.T) {
	data := `{
		"auths": {
			"https://index.docker.io/v1/": {"auth": "` + b64("hubuser:hub:pass") + `"},
			"http://reg.example.com:5000/v2/": {"auth": "` + b64("u:p") + `", "email": "x@y"},
			"tok.example.com": {"identitytoken": "refresh"},
			"bad.example.com": {"auth": "!!!"},
			"nocolon.example.com": {"auth": "` + b64("nopass") + `"}
		},
		"credsStore": "desktop"
	}`
	f, err := ParseAuthFile([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		registry string
		want     Credential
		ok       bool
		wantErr  bool
	}{
		{"docker.io", Credential{Username: "hubuser", Password: "hub:pass"}, true, false},
		{"registry-1.docker.io", Credential{Username: "hubuser", Password: "hub:pass"}, true, false},
		{"reg.example.com:5000", Credential{Username: "u", Password: "p"}, true, false},
		{"tok.example.com", Credential{IdentityToken: "refresh"}, true, false},
		{"other.example.com", Credential{}, false, false},
		{"bad.example.com", Credential{}, false, true},
		{"nocolon.example.com", Credential{}, false, true},
	} {
		got, ok, err := f.Get(tc.registry)
		if (err != nil) != tc.wantErr {
			t.Errorf("Get(%q) err = %v, want error %v", tc.registry, err, tc.wantErr)
			continue
		}
		if tc.wantErr && !strings.Contains(err.Error(), tc.registry) {
			t.Errorf("Get(%q) error %q does not name the entry", tc.registry, err)
		}
		if got != tc.want || ok != tc.ok {
			t.Errorf("Get(%q) = %+v, %v; want %+v, %v", tc.registry, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseAuthFileRejects(t *testing.T) {
	for _, in := range []string{`[]`, `null`, `{"auths": []}`, `{"auths": {"a": 1}}`, `{"auths": {"a": null}}`, `{`, `"x"`} {
		if _, err := ParseAuthFile([]byte(in)); err == nil {
			t.Errorf("ParseAuthFile(%s) succeeded", in)
		}
	}
	for _, in := range []string{``, "  \n", `{}`, `{"auths": null}`, `{"auths": {}}`} {
		f, err := ParseAuthFile([]byte(in))
		if err != nil {
			t.Errorf("ParseAuthFile(%q): %v", in, err)
			continue
		}
		if len(f.Registries()) != 0 {
			t.Errorf("ParseAuthFile(%q) has entries %v", in, f.Registries())
		}
	}
}

// decodeJSON decodes data into a generic value for semantic comparison.
func decodeJSON(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

func TestSetRemoveKeepsOtherContent(t *testing.T) {
	orig := `{"auths":{"ghcr.io":{"auth":"` + b64("g:h") + `","email":"a<b>&c"},"http://reg:5000":{"auth":"` + b64("old:old") + `"}},` +
		`"credHelpers":{"gcr.io":"gcloud"},"proxies":{"default":{"httpProxy":"http://p:3128"}},"psFormat":"table {{.ID}}"}`
	f, err := ParseAuthFile([]byte(orig))
	if err != nil {
		t.Fatal(err)
	}
	f.Set("reg:5000", Credential{Username: "new", Password: "pw"})
	f.Set("docker.io", Credential{Username: "hub", Password: "x"})
	out, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got := decodeJSON(t, out)
	want := decodeJSON(t, []byte(orig))
	auths := want["auths"].(map[string]any)
	delete(auths, "http://reg:5000") // replaced by the canonical key
	auths["reg:5000"] = map[string]any{"auth": b64("new:pw")}
	auths[HubAuthKey] = map[string]any{"auth": b64("hub:x")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after Set:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(string(out), "a<b>&c") {
		t.Errorf("HTML characters were escaped: %s", out)
	}

	if !f.Remove("registry-1.docker.io") {
		t.Error("Remove of hub entry reported nothing removed")
	}
	if f.Remove("docker.io") {
		t.Error("second Remove reported an entry")
	}
	if _, ok, _ := f.Get("ghcr.io"); !ok {
		t.Error("Remove of hub dropped ghcr.io")
	}
}

func TestWriteAuthFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "docker")
	path := filepath.Join(dir, "config.json")
	f, err := ReadAuthFile(path) // missing: empty
	if err != nil {
		t.Fatal(err)
	}
	f.Set("127.0.0.1:5000", Credential{Username: "u", Password: "p"})
	if err := WriteAuthFile(path, f); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", di.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only config.json (temp file left?)", len(entries))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n\t\"auths\": {\n\t\t\"127.0.0.1:5000\": {\n\t\t\t\"auth\": \"" + b64("u:p") + "\"\n\t\t}\n\t}\n}\n"
	if string(data) != want {
		t.Errorf("file content:\n%s\nwant:\n%s", data, want)
	}
}

func TestWriteAuthFileFollowsSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.json")
	if err := os.WriteFile(target, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "config.json")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f, err := ReadAuthFile(link)
	if err != nil {
		t.Fatal(err)
	}
	f.Set("ghcr.io", Credential{Username: "a", Password: "b"})
	if err := WriteAuthFile(link, f); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("symlink replaced: %v %v", fi, err)
	}
	g, err := ReadAuthFile(target)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, _ := g.Get("ghcr.io"); !ok || c.Username != "a" {
		t.Errorf("target not updated: %+v %v", c, ok)
	}
}

func TestReadAuthFileErrorsNamePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := ReadAuthFile(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadAuthFile of bad JSON: err = %v, want one naming %s", err, path)
	}
}

func FuzzAuthFile(f *testing.F) {
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}},"credsStore":"x"}`))
	f.Add([]byte(`{"auths":{"http://reg:5000/v2/":{"auth":"dTpw","identitytoken":"t"}}}`))
	f.Add([]byte(`{"auths":null}`))
	f.Add([]byte(``))
	f.Add([]byte(`{"auths":{"a":{"auth":"!!"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		af, err := ParseAuthFile(data)
		if err != nil {
			return
		}
		before := map[string]Credential{}
		for _, k := range af.Registries() {
			if key := AuthKey(k); AuthKey(key) != key {
				t.Fatalf("AuthKey not idempotent: %q -> %q -> %q", k, key, AuthKey(key))
			}
			if c, ok, err := af.Get(k); err == nil && ok {
				before[AuthKey(k)] = c
			}
		}
		out, err := af.Marshal()
		if err != nil {
			t.Fatalf("Marshal of parsed file: %v", err)
		}
		again, err := ParseAuthFile(out)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", out, err)
		}
		for k, want := range before {
			got, ok, err := again.Get(k)
			if err != nil || !ok || got != want {
				t.Fatalf("entry %q changed across Marshal: %+v %v %v, want %+v", k, got, ok, err, want)
			}
		}
		again.Set("fuzz.example:1", Credential{Username: "u", Password: "p:q"})
		if c, ok, err := again.Get("http://FUZZ.example:1/v2/"); err != nil || !ok || c.Password != "p:q" {
			t.Fatalf("Set then Get: %+v %v %v", c, ok, err)
		}
		if !again.Remove("fuzz.example:1") {
			t.Fatal("Remove after Set found nothing")
		}
		if _, ok, _ := again.Get("fuzz.example:1"); ok {
			t.Fatal("entry still there after Remove")
		}
	})
}
