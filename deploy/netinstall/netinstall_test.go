package netinstall

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMIIBfake'quote\n-----END CERTIFICATE-----\n"

func render(t *testing.T, p Params) string {
	t.Helper()
	var b strings.Builder
	if err := Render(&b, p); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// paramBlock is the rendered script's parameter block.
func paramBlock(t *testing.T, s string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, beginParams)
	if !ok {
		t.Fatalf("no %s in the rendered script", beginParams)
	}
	block, _, ok := strings.Cut(rest, endParams)
	if !ok {
		t.Fatalf("no %s in the rendered script", endParams)
	}
	// The rest of the BEGIN comment line stays out.
	_, block, _ = strings.Cut(block, "\n")
	return block
}

func TestRenderFillsParams(t *testing.T) {
	s := render(t, Params{
		CAPEM:   testCA,
		Servers: []string{"10.0.0.1:7951", "[fd00::2]:7951"},
		Join:    []string{"10.0.0.1:7946", "10.0.0.2:7946"},
		Source:  "m1\nrm -rf /",
	})
	if strings.Count(s, beginParams) != 1 || strings.Count(s, endParams) != 1 {
		t.Fatalf("the rendered script has more than one parameter block:\n%s", s)
	}
	if !strings.HasPrefix(s, "#!/bin/sh\n") || !strings.Contains(s, `"$tmp/drove" "$@"`) {
		t.Fatal("Render lost the script around the parameter block")
	}
	// Evaluate the block in a real sh and read the variables back.
	block := paramBlock(t, s)
	out, err := exec.Command("sh", "-c", block+`
printf '%s\n--\n%s\n--\n%s' "$DROVE_CA" "$DROVE_JOIN" "$DROVE_SERVERS"`).CombinedOutput()
	if err != nil {
		t.Fatalf("sh on the parameter block: %v\n%s\n%s", err, out, block)
	}
	want := strings.TrimSpace(testCA) + "\n--\n10.0.0.1:7946,10.0.0.2:7946\n--\n10.0.0.1:7951 [fd00::2]:7951"
	if string(out) != want {
		t.Errorf("sh reads the parameters as\n%s\nwant\n%s", out, want)
	}
	if strings.Contains(block, "\nrm -rf") {
		t.Error("a newline in Source escaped its comment line")
	}
}

func TestRenderRefuses(t *testing.T) {
	good := Params{CAPEM: testCA, Servers: []string{"m1:7951"}, Join: []string{"m1:7946"}}
	for _, tt := range []struct {
		name string
		edit func(p *Params)
		want error
	}{
		{"no CA", func(p *Params) { p.CAPEM = " " }, nil},
		{"no servers", func(p *Params) { p.Servers = nil }, nil},
		{"space in a server", func(p *Params) { p.Servers = []string{"m1:7951 evil"} }, ErrBadAddress},
		{"quote in a join address", func(p *Params) { p.Join = []string{"m1'$(reboot)'"} }, ErrBadAddress},
		{"empty join address", func(p *Params) { p.Join = []string{""} }, ErrBadAddress},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := good
			tt.edit(&p)
			err := Render(&strings.Builder{}, p)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Render = %v, want an error (%v)", err, tt.want)
			}
		})
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "it's", "'", "''", `a"b$c\d` + "`e`", "new\nline", "$(reboot)", " spaced  out "} {
		out, err := exec.Command("sh", "-c", "printf '%s' "+Quote(s)).Output()
		if err != nil {
			t.Fatalf("sh: %v", err)
		}
		if string(out) != s {
			t.Errorf("Quote(%q) reads back as %q", s, out)
		}
	}
}

// TestScriptStopsUnfilled: the committed script, run as is, names what is
// missing instead of doing anything.
func TestScriptStopsUnfilled(t *testing.T) {
	cmd := exec.Command("sh", "-s", "--", "--token", "drove-some-token-long-enough")
	cmd.Stdin = strings.NewReader(Script())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "has no cluster filled in") {
		t.Errorf("the unfilled script: %v\n%s", err, out)
	}
}

func TestScriptOptions(t *testing.T) {
	s := render(t, Params{CAPEM: testCA, Servers: []string{"127.0.0.1:1"}, Join: []string{"127.0.0.1:7946"}})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "--token-file F"},
		{[]string{"--bogus"}, "drove: unknown option --bogus"},
		{[]string{"--token"}, "drove: --token needs a value"},
		{[]string{}, "drove: no cluster token: pass --token T or --token-file F"},
		{[]string{"--token-file", "/nonexistent/token"}, "drove: cannot read the token file /nonexistent/token"},
		{[]string{"--token", "t0k", "--root", "relative"}, "drove: --root relative: want an absolute path"},
	} {
		cmd := exec.Command("sh", append([]string{"-s", "--"}, tt.args...)...)
		cmd.Stdin = strings.NewReader(s)
		cmd.Env = append(os.Environ(), "DROVE_TOKEN=")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tt.want) {
			t.Errorf("install.sh %v says\n%s\nwant %q", tt.args, out, tt.want)
		}
	}
}

// TestScriptShellcheck runs shellcheck (POSIX sh) on the committed and
// the rendered script when it is installed.
func TestScriptShellcheck(t *testing.T) {
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Skipf("needs shellcheck (apt-get install shellcheck): %v", err)
	}
	dir := t.TempDir()
	rendered := filepath.Join(dir, "rendered.sh")
	s := render(t, Params{CAPEM: testCA, Servers: []string{"10.0.0.1:7951"}, Join: []string{"10.0.0.1:7946"}})
	if err := os.WriteFile(rendered, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sc, "-s", "sh", "install.sh", rendered).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
