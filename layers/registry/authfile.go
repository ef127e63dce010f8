package registry

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drove-project/drove/layers/reference"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// HubAuthKey is the key docker writes for Docker Hub in config.json.
const HubAuthKey = "https://index.docker.io/v1/"

// Credential is one registry's entry in the credentials file.
type Credential struct {
	// Username and Password are stored base64("user:pass") in "auth".
	Username string
	Password string
	// IdentityToken is an OAuth refresh token ("identitytoken").
	IdentityToken string
	// RegistryToken is a bearer token sent as is ("registrytoken").
	RegistryToken string
}

// AuthFile is a decoded docker config.json. Keys other than "auths", and
// entries of other registries, are kept as they were read and written back
// unchanged in meaning. The zero value is not usable; use ParseAuthFile or
// ReadAuthFile.
type AuthFile struct {
	top   map[string]json.RawMessage
	auths map[string]json.RawMessage
}

// authEntry is the JSON shape of one "auths" entry.
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// AuthFilePath returns the credentials file to use: explicit if it is not
// empty (the --authfile flag), else $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json.
func AuthFilePath(explicit string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locate credentials file: %w", err)
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// AuthKey returns the config.json key for a registry as docker writes it:
// any scheme and path are dropped and the host lower-cased ("https://Reg:5000/v2/"
// is "reg:5000"), and every Docker Hub alias (docker.io, index.docker.io,
// registry-1.docker.io) is HubAuthKey.
func AuthKey(registry string) string {
	h := strings.TrimSpace(registry)
	lower := strings.ToLower(h)
	for _, scheme := range []string{"https://", "http://"} {
		if strings.HasPrefix(lower, scheme) {
			h = h[len(scheme):]
			break
		}
	}
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	h = strings.ToLower(strings.TrimSpace(h))
	if reference.HubAliases[h] {
		return HubAuthKey
	}
	return h
}

// ParseAuthFile decodes the contents of a config.json. Empty (or
// all-space) input is an empty file. The top level must be a JSON object and
// "auths", if present and not null, an object whose values are objects.
func ParseAuthFile(data []byte) (*AuthFile, error) {
	f := &AuthFile{top: map[string]json.RawMessage{}, auths: map[string]json.RawMessage{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(data, &f.top); err != nil {
		return nil, fmt.Errorf("decode credentials file: %w", err)
	}
	if f.top == nil {
		return nil, errors.New("decode credentials file: top level is null, want an object")
	}
	raw, ok := f.top["auths"]
	if !ok || string(raw) == "null" {
		return f, nil
	}
	if err := json.Unmarshal(raw, &f.auths); err != nil {
		return nil, fmt.Errorf("decode credentials file: auths: %w", err)
	}
	if f.auths == nil {
		f.auths = map[string]json.RawMessage{}
	}
	for k, v := range f.auths {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil || obj == nil {
			return nil, fmt.Errorf("decode credentials file: auths[%q]: want an object", k)
		}
	}
	return f, nil
}

// ReadAuthFile reads and decodes the credentials file at path; a missing
// file is an empty one.
func ReadAuthFile(path string) (*AuthFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ParseAuthFile(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials file %s: %w", path, err)
	}
	f, err := ParseAuthFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Registries returns the auths keys in the file, sorted.
func (f *AuthFile) Registries() []string {
	keys := make([]string, 0, len(f.auths))
	for k := range f.auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// matchingKeys returns the keys whose AuthKey equals registry's, an exact
// match first.
func (f *AuthFile) matchingKeys(registry string) []string {
	want := AuthKey(registry)
	var out []string
	if _, ok := f.auths[want]; ok {
		out = append(out, want)
	}
	for _, k := range f.Registries() {
		if k != want && AuthKey(k) == want {
			out = append(out, k)
		}
	}
	return out
}

// Get returns the credential stored for registry (any spelling AuthKey
// maps to the same key). ok is false when there is none.
func (f *AuthFile) Get(registry string) (c Credential, ok bool, err error) {
	keys := f.matchingKeys(registry)
	if len(keys) == 0 {
		return Credential{}, false, nil
	}
	var e authEntry
	if err := json.Unmarshal(f.auths[keys[0]], &e); err != nil {
		return Credential{}, false, fmt.Errorf("decode credentials for %s: %w", keys[0], err)
	}
	c = Credential{
		Username:      e.Username,
		Password:      e.Password,
		IdentityToken: e.IdentityToken,
		RegistryToken: e.RegistryToken,
	}
	if e.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(e.Auth)
		if err != nil {
			return Credential{}, false, fmt.Errorf("decode credentials for %s: auth: %w", keys[0], err)
		}
		user, pass, found := strings.Cut(string(raw), ":")
		if !found {
			return Credential{}, false, fmt.Errorf("decode credentials for %s: auth has no ':' between username and password", keys[0])
		}
		c.Username, c.Password = user, pass
	}
	return c, true, nil
}

// Set stores c for registry under AuthKey(registry), replacing any entry
// spelled differently for the same registry. Username and password are
// written as docker does, base64 in "auth".
func (f *AuthFile) Set(registry string, c Credential) {
	for _, k := range f.matchingKeys(registry) {
		delete(f.auths, k)
	}
	e := authEntry{IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken}
	if c.Username != "" || c.Password != "" {
		e.Auth = base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))
	}
	raw, _ := json.Marshal(e) // cannot fail: a struct of strings
	f.auths[AuthKey(registry)] = raw
}

// Remove deletes every entry for registry and reports whether there was one.
func (f *AuthFile) Remove(registry string) bool {
	keys := f.matchingKeys(registry)
	for _, k := range keys {
		delete(f.auths, k)
	}
	return len(keys) > 0
}

// Marshal encodes the file as docker does: tab-indented JSON with an
// "auths" object, other top-level keys kept.
func (f *AuthFile) Marshal() ([]byte, error) {
	auths, err := encodeJSON(f.auths, "")
	if err != nil {
		return nil, fmt.Errorf("encode credentials file: auths: %w", err)
	}
	top := make(map[string]json.RawMessage, len(f.top)+1)
	for k, v := range f.top {
		top[k] = v
	}
	top["auths"] = auths
	out, err := encodeJSON(top, "\t")
	if err != nil {
		return nil, fmt.Errorf("encode credentials file: %w", err)
	}
	return out, nil
}

// encodeJSON marshals v without HTML escaping, indented when indent is set.
func encodeJSON(v any, indent string) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteAuthFile writes f to path atomically: a temporary file in the same
// directory (created 0700 if missing) with mode 0600, synced, then renamed
// over the old one. A symlink at path is followed and its target replaced.
func WriteAuthFile(path string, f *AuthFile) error {
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(path)
		if err != nil {
			return fmt.Errorf("resolve credentials file %s: %w", path, err)
		}
		path = target
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create credentials directory %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary credentials file in %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		done = true
		return fmt.Errorf("replace credentials file %s: %w", path, err)
	}
	done = true
	return nil
}
