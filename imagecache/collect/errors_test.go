package collect

import (
	"errors"
	"fmt"
	"testing"

	"github.com/drove-project/drove/layers/registry"
)

func TestMissingError(t *testing.T) {
	err := fmt.Errorf("build: %w", &MissingError{Failures: []Failure{
		{Ref: "docker.io/library/a:1", Err: fmt.Errorf("fetch manifest: %w", registry.ErrNotFound)},
		{Ref: "docker.io/library/b:2", Err: fmt.Errorf("%w: the image is for linux/arm64 only", ErrPlatformNotFound)},
	}})
	want := "build: 2 container images could not be collected:\n" +
		"  docker.io/library/a:1: fetch manifest: not found\n" +
		"  docker.io/library/b:2: platform not available: the image is for linux/arm64 only"
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err, want)
	}
	var me *MissingError
	if !errors.As(err, &me) || len(me.Failures) != 2 {
		t.Fatalf("errors.As found %v", me)
	}
	if !errors.Is(err, registry.ErrNotFound) || !errors.Is(err, ErrPlatformNotFound) || errors.Is(err, ErrDigestMismatch) {
		t.Error("errors.Is does not see exactly the failures' sentinels")
	}
	one := &MissingError{Failures: []Failure{{Ref: "x", Err: errors.New("boom")}}}
	if got := one.Error(); got != "1 container image could not be collected:\n  x: boom" {
		t.Errorf("single failure: %q", got)
	}
}
