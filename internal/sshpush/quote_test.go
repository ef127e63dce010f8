package sshpush

import (
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var quoteCases = []string{"", "plain", "with space", "it's", `"dq"`, "$HOME", "`id`", "a\nb", "back\\slash", "*?[]", "-n", "'", "''", "%x", "ü"}

func TestShellQuoteThroughRealShell(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	script := "for a; do printf '%s\\000' \"$a\"; done"
	out, err := exec.Command(sh, "-c", "eval \"set -- $1\"; "+script, "sh", shellJoin(quoteCases)).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(quoteCases) {
		t.Fatalf("shell saw %d words %q, want %d", len(got), got, len(quoteCases))
	}
	for i := range quoteCases {
		if got[i] != quoteCases[i] {
			t.Errorf("word %d: shell saw %q, want %q (quoted %s)", i, got[i], quoteCases[i], shellQuote(quoteCases[i]))
		}
	}
}

func TestSystemdQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a "b"`, `"a \"b\""`},
		{`c:\x`, `"c:\\x"`},
		{"50%", `"50%%"`},
		{"$HOME", `"$$HOME"`},
		{"a\nb\tc\x01", `"a\nb\tc\x01"`},
	}
	for _, tt := range tests {
		if got := systemdQuote(tt.in); got != tt.want {
			t.Errorf("systemdQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestParseReport(t *testing.T) {
	got := parseReport([]byte("noise\ndrove-tmp=/a/.b.drove-1\r\ndrove-sha256=abc\ndrove-=x\ndrove-novalue\ndrove-sha256=def\n"))
	if len(got) != 2 || got["tmp"] != "/a/.b.drove-1" || got["sha256"] != "def" {
		t.Fatalf("parseReport = %v", got)
	}
}

func FuzzShellQuote(f *testing.F) {
	for _, c := range quoteCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := shellQuote(s)
		got, rest, err := unquoteShellWord(q)
		if err != nil || rest != "" || got != s {
			t.Fatalf("shellQuote(%q) = %s, reads back as %q (rest %q, %v)", s, q, got, rest, err)
		}
	})
}

func FuzzSystemdQuote(f *testing.F) {
	for _, c := range quoteCases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			t.Skip("InstallSpec refuses such arguments")
		}
		q := systemdQuote(s)
		if strings.ContainsAny(q, "\n\r") {
			t.Fatalf("systemdQuote(%q) = %s spans lines", s, q)
		}
		got, err := unquoteSystemdWord(q)
		if err != nil || got != s {
			t.Fatalf("systemdQuote(%q) = %s, reads back as %q (%v)", s, q, got, err)
		}
	})
}

func FuzzParseReport(f *testing.F) {
	f.Add([]byte("drove-tmp=/x/.y.drove-abc\ndrove-sha256=00ff\n"))
	f.Add([]byte("drove-state=running\r\ndrove-pid=12\n"))
	f.Add([]byte("drove-=\ndrove-\n=\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		rep := parseReport(out)
		for k, v := range rep {
			if k == "" || strings.ContainsAny(k, "=\n") || strings.Contains(v, "\n") {
				t.Fatalf("bad entry %q=%q", k, v)
			}
			// Every entry comes from a line of its own.
			if !strings.Contains("\n"+string(out), "\ndrove-"+k+"="+v) {
				t.Fatalf("entry %q=%q not in output", k, v)
			}
		}
	})
}

// unquoteShellWord reads one POSIX shell word made of bare safe
// characters, single-quoted strings and \' (the forms shellQuote writes).
func unquoteShellWord(s string) (word, rest string, err error) {
	var b strings.Builder
	i := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", "", errors.New("unterminated quote")
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 2
		case c == '\\' && i+1 < len(s):
			b.WriteByte(s[i+1])
			i += 2
		case c == ' ' || c == '\t' || c == '\n':
			return b.String(), s[i:], nil
		case shellSafe(rune(c)):
			b.WriteByte(c)
			i++
		default:
			return "", "", errors.New("unquoted special character " + strconv.QuoteRune(rune(c)))
		}
	}
	return b.String(), "", nil
}

// unquoteSystemdWord reads one double-quoted systemd word with C escapes,
// "%%" and "$$".
func unquoteSystemdWord(s string) (string, error) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", errors.New("not double-quoted")
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return "", errors.New("bare quote inside")
		case '%', '$':
			if i+1 >= len(s) || s[i+1] != c {
				return "", errors.New("lone " + string(c))
			}
			b.WriteByte(c)
			i++
		case '\\':
			if i+1 >= len(s) {
				return "", errors.New("trailing backslash")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '\\', '"':
				b.WriteByte(s[i])
			case 'x':
				if i+2 >= len(s) {
					return "", errors.New("short \\x")
				}
				v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return "", err
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				return "", errors.New("unknown escape")
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
