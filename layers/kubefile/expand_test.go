package kubefile

import (
	"errors"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "a", "EMPTY": "", "P": "/opt"}
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	tests := []struct {
		word      string
		want      string
		deferArch bool
		json      bool
		literal   bool
	}{
		{word: "plain", want: "plain"},
		{word: "$A", want: "a"},
		{word: "${A}", want: "a"},
		{word: "x${A}y", want: "xay"},
		{word: "$A_B", want: ""}, // the name is A_B, which is unset
		{word: "$A-b", want: "a-b"},
		{word: "$UNSET", want: ""},
		{word: "${UNSET:-def}", want: "def"},
		{word: "${EMPTY:-def}", want: "def"},
		{word: "${EMPTY-def}", want: ""},
		{word: "${UNSET-def}", want: "def"},
		{word: "${A:-def}", want: "a"},
		{word: "${A:+alt}", want: "alt"},
		{word: "${EMPTY:+alt}", want: ""},
		{word: "${EMPTY+alt}", want: "alt"},
		{word: "${UNSET:+alt}", want: ""},
		{word: "${UNSET:-$P/bin}", want: "/opt/bin"},
		{word: "${UNSET:-${A}x}", want: "ax"},
		{word: `\$A`, want: "$A"},
		{word: `'$A'`, want: "$A"},
		{word: `"$A b"`, want: "a b"},
		{word: `"\$A \"q\" \\ \x"`, want: `$A "q" \ \x`},
		{word: `a\ b`, want: "a b"},
		{word: `trailing\`, want: "trailing"},
		{word: "$", want: "$"},
		{word: "a$ b", want: "a$ b"},
		{word: "$1", want: "$1"},
		{word: "${UNSET:-\"a}b\"}", want: "a}b"},
		{word: "${A:?must be set}", want: "a"},
		{word: strings.Repeat("${U:-", 32) + "deep" + strings.Repeat("}", 32), want: "deep"},
		{word: "${ARCH}/bin", want: "${ARCH}/bin", deferArch: true},
		{word: "$ARCH/bin", want: "${ARCH}/bin", deferArch: true},
		{word: "${ARCH:-amd64}/$A", want: "${ARCH}/a", deferArch: true},
		{word: "${ARCH:+multi}", want: "multi", deferArch: true},
		{word: "$ARCHX", want: "", deferArch: true},
		{word: "${ARCH}", want: "", deferArch: false},
		{word: `"quoted" $A \$B`, want: `"quoted" a $B`, json: true},
		{word: `back\slash`, want: `back\slash`, json: true},
		{word: `"$A" ${B:-x} \$C`, want: `$A ${B:-x} $C`, literal: true},
	}
	for _, tt := range tests {
		e := &expander{lookup: lookup, deferArch: tt.deferArch, jsonElem: tt.json, literal: tt.literal}
		got, err := e.expand(tt.word)
		if err != nil {
			t.Errorf("expand(%q): %v", tt.word, err)
			continue
		}
		if got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

func TestExpandErrors(t *testing.T) {
	lookup := func(string) (string, bool) { return "", false }
	tests := []struct{ word, want string }{
		{"${", `bad substitution in "${"`},
		{"${}", `bad substitution in "${}"`},
		{"${A", `bad substitution in "${A"`},
		{"${A:", `bad substitution in "${A:"`},
		{"${A:-x", `bad substitution: missing '}' in "${A:-x"`},
		{"${A/x/y}", `bad substitution: unsupported modifier '/' after ${A in "${A/x/y}"`},
		{"${1}", `bad substitution in "${1}"`},
		{"'open", `unterminated ' quote in "'open"`},
		{`"open`, `unterminated " quote in "\"open"`},
		{"${A:?is required}", `A: is required in "${A:?is required}"`},
		{"${A?}", `A: not set in "${A?}"`},
		{strings.Repeat("${A:-", 33) + strings.Repeat("}", 33), "bad substitution: nested more than 32 deep in \"" + strings.Repeat("${A:-", 33) + strings.Repeat("}", 33) + "\""},
	}
	for _, tt := range tests {
		_, err := (&expander{lookup: lookup}).expand(tt.word)
		if err == nil || err.Error() != tt.want {
			t.Errorf("expand(%q) error = %v, want %s", tt.word, err, tt.want)
		}
	}
	_, err := (&expander{lookup: lookup}).expand("${}")
	if !errors.Is(err, errBadSubst) {
		t.Errorf("error %v does not match errBadSubst", err)
	}
}

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"a b  c", []string{"a", "b", "c"}},
		{`"a b" c`, []string{`"a b"`, "c"}},
		{`a\ b c`, []string{`a\ b`, "c"}},
		{`k="v w" x='y z'`, []string{`k="v w"`, `x='y z'`}},
		{`"a \" b"`, []string{`"a \" b"`}},
		{"\ta\t", []string{"a"}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := splitWords(tt.in)
		if err != nil {
			t.Errorf("splitWords(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("splitWords(%q) = %q, want %q", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("splitWords(%q) = %q, want %q", tt.in, got, tt.want)
				break
			}
		}
	}
}
