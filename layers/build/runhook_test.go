package build

import (
	"slices"
	"strings"
	"testing"
)

// recordingHook stands in for the build mirror: it adds one variable and
// reports, after each RUN, what the RUN wrote to a file it names.
type recordingHook struct {
	calls  []string
	reused [][]string
	ran    int
}

func (h *recordingHook) Env() []string { return []string{"DROVE_HOOK=on"} }
func (h *recordingHook) Ran() []string {
	h.ran++
	if h.ran == 1 {
		return []string{"pulled/one"}
	}
	return nil
}
func (h *recordingHook) Reused(notes []string) { h.reused = append(h.reused, notes) }

// A RUN sees the hook's environment; what Ran returned comes back through
// Reused when the step is later taken from the cache, and the hook's
// variable is not part of the cache key (so a new mirror port does not
// rebuild).
func TestRunHookNotesSurviveTheCache(t *testing.T) {
	e := newEnv(t)
	ctxDir := t.TempDir()
	writeFiles(t, ctxDir, map[string]string{
		"Kubefile": "FROM scratch\nRUN echo $DROVE_HOOK > hook\nRUN true\n",
	})
	h := &recordingHook{}
	e.mustBuild(ctxDir, Options{RunHook: h})
	if h.ran != 2 || len(h.reused) != 0 {
		t.Fatalf("first build: ran %d, reused %v", h.ran, h.reused)
	}
	if got := strings.Join(tree(t, e.rootfs(e.image("test:v1"))), " "); got != "hook=on\n" {
		t.Fatalf("rootfs %q: the RUN did not see the hook's env", got)
	}
	h2 := &recordingHook{ran: 100}
	res := e.mustBuild(ctxDir, Options{RunHook: h2})
	if res.Cached != 2 || h2.ran != 100 {
		t.Fatalf("second build: %+v, ran %d; want both RUNs cached\n%s", res, h2.ran, e.out.String())
	}
	if len(h2.reused) != 1 || !slices.Equal(h2.reused[0], []string{"pulled/one"}) {
		t.Fatalf("reused notes %v, want [[pulled/one]]", h2.reused)
	}
}
