package kubefile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixtureDir holds sealer's own build test fixtures (see shared/README.md).
const fixtureDir = "../../../shared/reference/sealer-fixtures/test/suites/build/fixtures"

// TestSealerFixtures parses every sealer fixture Kubefile and checks what
// each one means.
func TestSealerFixtures(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtureDir, "*", "Kubefile"))
	if len(files) == 0 {
		t.Skipf("no sealer fixtures under %s", fixtureDir)
	}
	want := map[string][]string{
		"build_with_appcmds": {
			"FROM [scratch]",
			"APP [yamlapp local://yamlcontext]",
			"APP [shellapp local://shellcontext]",
			"APP [mixedapp local://install.sh local://mixedcontext]",
			"APPCMDS [mixedapp kubectl apply -f app.yaml]",
			"LAUNCH [mixedapp shellapp]",
		},
		"build_with_cmds": {
			"FROM [scratch]",
			"COPY [app.yaml manifests/]",
			"COPY [imageList manifests/]",
			"CMDS [kubectl apply -f manifests/app.yaml]",
		},
		"build_with_imagelist_flag": {"FROM [scratch]"},
		"build_with_launch": {
			"FROM [scratch]",
			"COPY [imageList manifests/]",
			"APP [myapp local://app.yaml]",
			"LAUNCH [myapp]",
		},
		"build_with_multi_arch": {
			"FROM [scratch]",
			"COPY [${ARCH}/bin bin]",
			"APP [myapp local://app.yaml]",
			"LAUNCH [myapp]",
		},
	}
	for _, file := range files {
		name := filepath.Base(filepath.Dir(file))
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			k, err := Parse(file, f)
			if err != nil {
				t.Fatal(err)
			}
			steps, warnings, err := k.Steps(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != 0 || len(k.Warnings) != 0 {
				t.Errorf("warnings: %q %q", k.Warnings, warnings)
			}
			var got []string
			for _, s := range steps {
				got = append(got, s.Cmd+" "+fmtArgs(s.Args))
			}
			w, ok := want[name]
			if !ok {
				t.Logf("new fixture, parsed as %q", got)
				return
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("steps\n got %q\nwant %q", got, w)
			}
			// Per-arch sources resolve to directories the fixture has.
			for _, s := range steps {
				if s.Cmd != Copy || !strings.Contains(s.Args[0], "$") {
					continue
				}
				for _, arch := range []string{"amd64", "arm64"} {
					src := ResolveArch(s.Args[0], arch)
					if _, err := os.Stat(filepath.Join(filepath.Dir(file), src)); err != nil {
						t.Errorf("COPY source %s for %s: %v", s.Args[0], arch, err)
					}
				}
			}
		})
	}
}

func fmtArgs(args []string) string { return "[" + strings.Join(args, " ") + "]" }
