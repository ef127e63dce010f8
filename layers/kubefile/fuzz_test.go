package kubefile

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that a parsed Kubefile's
// instructions have increasing lines, and that Validate and Steps never
// panic on what Parse accepts. Seeds: testdata/fuzz/FuzzParse (every sealer
// fixture Kubefile and some broken ones) plus the ones below.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"FROM scratch\nCOPY ${ARCH}/bin bin\nAPP myapp local://app.yaml\nLAUNCH myapp",
		"ARG V=1\nFROM --platform=linux/arm64 base:$V\nENV A=${V:-x} B=\"q $A\"\nRUN echo \\\n  hi\nCMDS [\"a\", \"b\"]",
		"FROM scratch\nAPP a local://x\nAPPCMDS a [\"k\"]\nAPPENV a k=v\nCMD old\nKUBEVERSION \">=1.22\"",
		"FROM scratch\nLABEL \"a b\"=c d='e f'\nCNI c local://c\nCSI s https://x/y\nMAINTAINER me",
		"FROM scratch\nRUN [\"a\",\nLAUNCH [x]",
		"FROM scratch\nCOPY ${A:-\"x}\" y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		k, err := Parse("Kubefile", strings.NewReader(text))
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, not *Error", err, err)
			}
			return
		}
		last := 0
		for _, in := range k.Instructions {
			if in.Line <= last {
				t.Fatalf("instruction %s at line %d follows line %d", in.Cmd, in.Line, last)
			}
			last = in.Line
		}
		_ = k.Validate([]string{"a"})
		steps, _, err := k.Steps(map[string]string{"A": "1"}, []string{"PATH=/bin"})
		if err == nil && len(steps) != len(k.Instructions) {
			t.Fatalf("%d steps for %d instructions", len(steps), len(k.Instructions))
		}
		for _, s := range steps {
			for _, a := range s.Args {
				_ = ResolveArch(a, "amd64")
			}
		}
	})
}

// TestFuzzSeeds checks that the committed seeds mean what their names say:
// bad_* fail to parse and the others parse.
func TestFuzzSeeds(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzParse/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seeds: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitN(string(data), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" || !strings.HasPrefix(lines[1], "string(") {
			t.Fatalf("%s: not a go test fuzz v1 string seed", file)
		}
		text, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "string("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		_, err = Parse(filepath.Base(file), strings.NewReader(text))
		if bad := strings.HasPrefix(filepath.Base(file), "bad_"); bad != (err != nil) {
			t.Errorf("%s: Parse error = %v", file, err)
		}
	}
}
