package kubefile

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateInherited(t *testing.T) {
	text := "FROM registry.local/base:v1\nAPP mine local://x\nAPPCMDS base-app [\"echo hi\"]\nAPPENV base-app k=v\nLAUNCH [\"base-app\", \"mine\"]"
	k := parseString(t, text) // not scratch: app references wait for Validate
	if err := k.Validate([]string{"base-app", "other"}); err != nil {
		t.Errorf("Validate with the base app: %v", err)
	}
	err := k.Validate([]string{"other"})
	var kerr *Error
	if !errors.As(err, &kerr) || kerr.Line != 3 || err.Error() != `Kubefile:3: APPCMDS for undeclared app "base-app": declare it first with APP, CNI or CSI` {
		t.Errorf("Validate without the base app: %v", err)
	}
	k = parseString(t, "FROM base\nLAUNCH a b")
	err = k.Validate([]string{"a"})
	if err == nil || err.Error() != `Kubefile:2: LAUNCH of undeclared app "b": declare it with APP, CNI or CSI` {
		t.Errorf("Validate LAUNCH: %v", err)
	}
}

func TestParseChecksReferencesOnlyFromScratch(t *testing.T) {
	if _, err := Parse("Kubefile", stringsReader("FROM base\nLAUNCH inherited")); err != nil {
		t.Errorf("FROM base: %v", err)
	}
	for _, from := range []string{"scratch", "Scratch"} {
		if _, err := Parse("Kubefile", stringsReader("FROM "+from+"\nLAUNCH inherited")); err == nil {
			t.Errorf("FROM %s with an undeclared LAUNCH app parsed", from)
		}
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
