// Package depcheck holds a test that keeps drove's imports pointing down, as
// DESIGN.md draws them: cmd → agent, coordinator → layers, imagecache →
// protocol. It reads the real import graph with `go list`.
package depcheck

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/drove-project/drove"

// rule forbids packages under from (module-relative prefix) to depend,
// directly or not, on any import path with one of the forbidden prefixes.
type rule struct {
	from      string
	forbidden []string
}

var (
	heavy = []string{
		"github.com/hashicorp/raft", "github.com/hashicorp/memberlist",
		"github.com/nats-io/", "github.com/spf13/cobra",
	}
	rules = []rule{
		{"protocol", append([]string{module + "/"}, heavy...)},
		{"layers", append([]string{module + "/agent", module + "/coordinator", module + "/imagecache", module + "/cmd"}, heavy...)},
		{"imagecache", append([]string{module + "/agent", module + "/coordinator", module + "/cmd"}, heavy...)},
		{"agent", []string{module + "/coordinator", module + "/cmd"}},
		{"coordinator", []string{module + "/agent", module + "/cmd"}},
		// deploy: install scripts, units and the boot-media writer, which
		// agents' and coordinators' commands embed.
		{"deploy", append([]string{module + "/agent", module + "/coordinator", module + "/cmd"}, heavy...)},
		{"internal", []string{module + "/agent", module + "/coordinator", module + "/cmd", module + "/layers", module + "/imagecache"}},
	}
)

func TestImportDirection(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, deps := fields[0], fields[1:]
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		for _, r := range rules {
			if rel != r.from && !strings.HasPrefix(rel, r.from+"/") {
				continue
			}
			checked++
			for _, d := range deps {
				for _, f := range r.forbidden {
					if strings.HasPrefix(d, f) && !strings.HasPrefix(d, module+"/internal/") {
						t.Errorf("%s depends on %s, against DESIGN.md's direction (%s must not reach %s)", pkg, d, r.from, f)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched any rule: the check is looking at the wrong module")
	}
}

// TestRulesCatchViolations proves the matcher is not vacuous.
func TestRulesCatchViolations(t *testing.T) {
	matched := false
	for _, r := range rules {
		if r.from == "layers" {
			for _, f := range r.forbidden {
				if strings.HasPrefix("github.com/hashicorp/raft/v2", f) {
					matched = true
				}
			}
		}
	}
	if !matched {
		t.Fatal("layers → raft would not be caught")
	}
}
