package systemd

import (
	"strings"
	"testing"
)

// TestUnit: the unit runs the agent from the paths drove agent install
// writes, as a simple service restarted always, enabled for boot.
func TestUnit(t *testing.T) {
	keys := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(Unit), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("line %q is neither a section nor key=value", line)
			}
			keys[section+"."+k] = v
		}
	}
	for k, want := range map[string]string{
		"Service.Type":      "simple",
		"Service.ExecStart": Binary + " agent --config " + Config,
		"Service.Restart":   "always",
		"Install.WantedBy":  "multi-user.target",
		"Unit.After":        "network-online.target",
	} {
		if keys[k] != want {
			t.Errorf("%s = %q, want %q", k, keys[k], want)
		}
	}
}
