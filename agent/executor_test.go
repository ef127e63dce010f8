package agent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drove-project/drove/protocol"
)

const testNode = "n1"

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// openTest opens an executor on dir/journal.db and closes it when the test
// ends (if the test did not close it itself).
func openTest(t *testing.T, dir string, actions *Registry) *Executor {
	t.Helper()
	e, err := OpenExecutor(filepath.Join(dir, "journal.log"), testNode, actions, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func shellStep(id, command string) *protocol.StepDispatch {
	return &protocol.StepDispatch{
		StepID: id, PlanID: "p1", Node: testNode, Attempt: 1, Term: 1, Leader: "m1",
		Action: protocol.Action{Kind: "shell", Command: command},
	}
}

func with(d *protocol.StepDispatch, f func(*protocol.StepDispatch)) *protocol.StepDispatch {
	c := *d
	f(&c)
	return &c
}

func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// waitFor polls cond until it holds or 20 s pass (see eventually).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	eventually(t, 20*time.Second, what, cond)
}

// processGone reports whether pid no longer runs: kill(pid, 0) fails with
// ESRCH, or it is a zombie nobody has reaped yet (an orphan whose new parent
// does not reap promptly).
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && strings.HasPrefix(s[i+1:], " Z")
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	var pid int
	waitFor(t, "pid file "+path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		first, _, _ := strings.Cut(string(b), "\n")
		pid, err = strconv.Atoi(strings.TrimSpace(first))
		return err == nil && pid > 0
	})
	return pid
}

func sameResult(t *testing.T, got, want *protocol.StepResult) {
	t.Helper()
	g, w := *got, *want
	g.Replayed, w.Replayed = false, false
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("result changed:\n got %+v\nwant %+v", g, w)
	}
}

func TestDecide(t *testing.T) {
	rec := func(state string, attempt int) Record { return Record{StepID: "s", State: state, Attempt: attempt} }
	d := func(attempt int, idem bool) *protocol.StepDispatch {
		return &protocol.StepDispatch{StepID: "s", Attempt: attempt, Idempotent: idem}
	}
	for _, c := range []struct {
		name  string
		rec   Record
		found bool
		d     *protocol.StepDispatch
		want  verdict
	}{
		{"new step", Record{}, false, d(1, false), verdictRun},
		{"succeeded", rec(protocol.StateSucceeded, 1), true, d(1, false), verdictReplay},
		{"succeeded, higher attempt", rec(protocol.StateSucceeded, 1), true, d(5, true), verdictReplay},
		{"failed, same attempt", rec(protocol.StateFailed, 2), true, d(2, true), verdictReplay},
		{"failed, lower attempt", rec(protocol.StateFailed, 2), true, d(1, true), verdictReplay},
		{"failed, retry", rec(protocol.StateFailed, 2), true, d(3, false), verdictRun},
		{"interrupted, not idempotent", rec(protocol.StateInterrupted, 1), true, d(1, false), verdictInterrupted},
		{"interrupted, idempotent", rec(protocol.StateInterrupted, 1), true, d(1, true), verdictRun},
		{"interrupted, retry", rec(protocol.StateInterrupted, 1), true, d(2, false), verdictRun},
		{"running without a run", rec(protocol.StateRunning, 1), true, d(1, false), verdictInterrupted},
	} {
		if got := decide(c.rec, c.found, c.d); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestReplayDoesNotRunAgain(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	e := openTest(t, dir, nil)
	d := shellStep("p1/0/0/n1", fmt.Sprintf("echo ran >> %s; echo hello; echo oops >&2", count))

	first := e.Handle(t.Context(), d)
	if first.State != protocol.StateSucceeded || first.Replayed || first.ExitCode != 0 {
		t.Fatalf("first run: %+v", first)
	}
	if !strings.Contains(first.Output, "hello\n") || !strings.Contains(first.Output, "oops\n") {
		t.Fatalf("output %q lacks stdout or stderr", first.Output)
	}
	for i := 0; i < 2; i++ {
		r := e.Handle(t.Context(), d)
		if !r.Replayed {
			t.Fatalf("dispatch %d not replayed: %+v", i+2, r)
		}
		sameResult(t, r, first)
	}
	// A higher attempt of a succeeded step is replayed too, as that
	// attempt's answer (the leader ignores answers for older attempts, and
	// would ask forever).
	if r := e.Handle(t.Context(), with(d, func(d *protocol.StepDispatch) { d.Attempt = 7 })); !r.Replayed || r.Attempt != 7 {
		t.Fatalf("higher attempt of a succeeded step: %+v", r)
	}
	if n := lines(t, count); n != 1 {
		t.Fatalf("command ran %d times, want 1", n)
	}

	// The journal is durable: a new executor on the same file replays.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openTest(t, dir, nil)
	r := e2.Handle(t.Context(), d)
	if !r.Replayed {
		t.Fatalf("after reopen: %+v", r)
	}
	sameResult(t, r, first)
	if n := lines(t, count); n != 1 {
		t.Fatalf("command ran %d times after reopen, want 1", n)
	}
}

func TestFailedStepReplayedUntilRetried(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	e := openTest(t, dir, nil)
	d := shellStep("s", fmt.Sprintf("echo ran >> %s; exit 3", count))

	r := e.Handle(t.Context(), d)
	if r.State != protocol.StateFailed || r.ExitCode != 3 || r.Error != "exit status 3" || r.Code != "" {
		t.Fatalf("failed step: %+v", r)
	}
	if r := e.Handle(t.Context(), d); !r.Replayed || r.State != protocol.StateFailed {
		t.Fatalf("same attempt: %+v", r)
	}
	if n := lines(t, count); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
	retry := with(d, func(d *protocol.StepDispatch) { d.Attempt = 2 })
	if r := e.Handle(t.Context(), retry); r.Replayed || r.Attempt != 2 || r.State != protocol.StateFailed {
		t.Fatalf("retry: %+v", r)
	}
	if n := lines(t, count); n != 2 {
		t.Fatalf("ran %d times after a retry, want 2", n)
	}
	// An older attempt arriving late gets the newest record.
	if r := e.Handle(t.Context(), d); !r.Replayed || r.Attempt != 2 {
		t.Fatalf("late older attempt: %+v", r)
	}
	if n := lines(t, count); n != 2 {
		t.Fatalf("ran %d times, want 2", n)
	}
}

func TestConcurrentDuplicatesRunOnce(t *testing.T) {
	dir := t.TempDir()
	count, release := filepath.Join(dir, "count"), filepath.Join(dir, "release")
	e := openTest(t, dir, nil)
	d := shellStep("s", fmt.Sprintf("echo ran >> %s; while [ ! -e %s ]; do sleep 0.01; done; echo done", count, release))

	const dups = 7
	results := make(chan *protocol.StepResult, dups+1)
	go func() { results <- e.Handle(context.Background(), d) }()
	waitFor(t, "the first run to start", func() bool { return lines(t, count) == 1 })
	for i := 0; i < dups; i++ {
		go func() { results <- e.Handle(context.Background(), d) }()
	}
	waitFor(t, "duplicates to wait for the run", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		r := e.running["s"]
		return r != nil && r.dups == dups
	})
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var fresh, replayed []*protocol.StepResult
	for i := 0; i < dups+1; i++ {
		r := <-results
		if r.Replayed {
			replayed = append(replayed, r)
		} else {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) != 1 || len(replayed) != dups {
		t.Fatalf("%d fresh and %d replayed results, want 1 and %d", len(fresh), len(replayed), dups)
	}
	for _, r := range replayed {
		sameResult(t, r, fresh[0])
	}
	if fresh[0].State != protocol.StateSucceeded || !strings.Contains(fresh[0].Output, "done") {
		t.Fatalf("result: %+v", fresh[0])
	}
	if n := lines(t, count); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}

func TestHandleStopsWaitingWhenCtxEnds(t *testing.T) {
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	e := openTest(t, dir, nil)
	d := shellStep("s", fmt.Sprintf("while [ ! -e %s ]; do sleep 0.01; done; echo finished", release))

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := e.Handle(ctx, d)
	if r.State != protocol.StateRunning {
		t.Fatalf("with ended ctx: %+v", r)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The step ran on; a later dispatch gets its result.
	r = e.Handle(t.Context(), d)
	if r.State != protocol.StateSucceeded || !r.Replayed || !strings.Contains(r.Output, "finished") {
		t.Fatalf("later dispatch: %+v", r)
	}
}

func TestStaleTermRejectedAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	e := openTest(t, dir, nil)
	step := func(id string, term uint64) *protocol.StepDispatch {
		return with(shellStep(id, "echo ran >> "+count), func(d *protocol.StepDispatch) { d.Term = term })
	}
	if r := e.Handle(t.Context(), step("a", 5)); r.State != protocol.StateSucceeded {
		t.Fatalf("term 5: %+v", r)
	}
	r := e.Handle(t.Context(), step("b", 4))
	if r.State != protocol.StateRejected || r.Code != protocol.CodeStaleTerm || !strings.Contains(r.Error, "term 4") {
		t.Fatalf("term 4 after 5: %+v", r)
	}
	// Even a replay is refused to an old leader.
	if r := e.Handle(t.Context(), step("a", 4)); r.State != protocol.StateRejected || r.Code != protocol.CodeStaleTerm {
		t.Fatalf("old leader asking for a replay: %+v", r)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e = openTest(t, dir, nil)
	if r := e.Handle(t.Context(), step("b", 4)); r.State != protocol.StateRejected || r.Code != protocol.CodeStaleTerm {
		t.Fatalf("term 4 after reopen: %+v", r)
	}
	if r := e.Handle(t.Context(), step("b", 5)); r.State != protocol.StateSucceeded {
		t.Fatalf("equal term: %+v", r)
	}
	if r := e.Handle(t.Context(), step("c", 9)); r.State != protocol.StateSucceeded {
		t.Fatalf("higher term: %+v", r)
	}
	if r := e.Handle(t.Context(), step("d", 5)); r.Code != protocol.CodeStaleTerm {
		t.Fatalf("term 5 after 9: %+v", r)
	}
	if got, _ := e.journal.Term(); got != 9 {
		t.Fatalf("stored term %d, want 9", got)
	}
	if n := lines(t, count); n != 3 {
		t.Fatalf("ran %d steps, want 3 (a, b, c)", n)
	}
	if _, err := e.journal.Get("d"); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("rejected step journaled: %v", err)
	}
}

func TestRejectsWrongNodeAndBadRequests(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	e := openTest(t, dir, nil)
	base := shellStep("s", "echo ran >> "+count)
	for _, c := range []struct {
		name string
		d    *protocol.StepDispatch
		code protocol.ErrorCode
	}{
		{"wrong node", with(base, func(d *protocol.StepDispatch) { d.Node = "n2"; d.Term = 50 }), protocol.CodeWrongNode},
		{"no step ID", with(base, func(d *protocol.StepDispatch) { d.StepID = "" }), protocol.CodeBadRequest},
		{"huge step ID", with(base, func(d *protocol.StepDispatch) { d.StepID = strings.Repeat("x", maxStepID+1) }), protocol.CodeBadRequest},
		{"nil", nil, protocol.CodeBadRequest},
	} {
		r := e.Handle(t.Context(), c.d)
		if r.State != protocol.StateRejected || r.Code != c.code || r.Error == "" {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
	if n := lines(t, count); n != 0 {
		t.Fatalf("a rejected step ran")
	}
	if _, err := e.journal.Get("s"); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("rejected step journaled: %v", err)
	}
	if term, _ := e.journal.Term(); term != 0 {
		t.Fatalf("a wrong-node dispatch raised the term to %d", term)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	shPID, sleepPID := filepath.Join(dir, "sh.pid"), filepath.Join(dir, "sleep.pid")
	e := openTest(t, dir, nil)
	d := shellStep("s", fmt.Sprintf("echo $$ > %s; sleep 300 & echo $! > %s; echo started; wait", shPID, sleepPID))
	d.TimeoutMs = 500

	start := time.Now()
	r := e.Handle(t.Context(), d)
	if r.State != protocol.StateFailed || r.Code != protocol.CodeTimeout || r.ExitCode != -1 {
		t.Fatalf("timed-out step: %+v", r)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Fatalf("Handle took %s after a 500ms timeout", took)
	}
	if !strings.Contains(r.Output, "started") {
		t.Fatalf("output before the timeout lost: %q", r.Output)
	}
	for _, f := range []string{shPID, sleepPID} {
		pid := readPID(t, f)
		waitFor(t, fmt.Sprintf("process %d (%s) to be gone", pid, filepath.Base(f)), func() bool { return processGone(pid) })
	}
	rec, err := e.journal.Get("s")
	if err != nil || rec.State != protocol.StateFailed || rec.Result.Code != protocol.CodeTimeout {
		t.Fatalf("journal: %+v %v", rec, err)
	}
}

func TestCloseInterruptsRunningStep(t *testing.T) {
	dir := t.TempDir()
	pidFile, count := filepath.Join(dir, "pid"), filepath.Join(dir, "count")
	e, err := OpenExecutor(filepath.Join(dir, "journal.log"), testNode, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	d := shellStep("s", fmt.Sprintf("echo ran >> %s; echo $$ > %s; exec sleep 300", count, pidFile))
	done := make(chan *protocol.StepResult, 1)
	go func() { done <- e.Handle(context.Background(), d) }()
	pid := readPID(t, pidFile)
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.State != protocol.StateInterrupted || r.Code != protocol.CodeInterrupted {
		t.Fatalf("result of a step stopped by Close: %+v", r)
	}
	waitFor(t, "the step's process to be gone", func() bool { return processGone(pid) })
	if r := e.Handle(t.Context(), d); r.State != protocol.StateRejected || r.Code != protocol.CodeInternal {
		t.Fatalf("dispatch after Close: %+v", r)
	}

	e = openTest(t, dir, nil)
	r = e.Handle(t.Context(), d)
	if r.State != protocol.StateInterrupted || r.Code != protocol.CodeInterrupted || !r.Replayed {
		t.Fatalf("after reopen: %+v", r)
	}
	if n := lines(t, count); n != 1 {
		t.Fatalf("ran %d times, want 1", n)
	}
}

func TestUnknownAction(t *testing.T) {
	e := openTest(t, t.TempDir(), nil)
	d := shellStep("s", "")
	d.Action.Kind = "teleport"
	r := e.Handle(t.Context(), d)
	if r.State != protocol.StateFailed || r.Code != protocol.CodeUnknownAction || !strings.Contains(r.Error, "teleport") {
		t.Fatalf("unknown action: %+v", r)
	}
	if rec, err := e.journal.Get("s"); err != nil || rec.State != protocol.StateFailed {
		t.Fatalf("journal: %+v %v", rec, err)
	}
}

func TestPanickingActionFailsStep(t *testing.T) {
	reg := NewRegistry()
	reg.Register("boom", ActionFunc(func(ctx context.Context, a protocol.Action, out io.Writer) (int, map[string]string, error) {
		fmt.Fprintln(out, "about to fail")
		panic("kaboom")
	}))
	e := openTest(t, t.TempDir(), reg)
	r := e.Handle(t.Context(), &protocol.StepDispatch{StepID: "s", Node: testNode, Attempt: 1, Term: 1, Action: protocol.Action{Kind: "boom"}})
	if r.State != protocol.StateFailed || r.Code != protocol.CodeInternal || !strings.Contains(r.Error, "kaboom") || r.Output != "about to fail\n" {
		t.Fatalf("panicking action: %+v", r)
	}
}

func TestOutputTailAndDigest(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil)
	d := shellStep("s", "head -c 200000 /dev/zero | tr '\\0' a; echo; echo END")
	r := e.Handle(t.Context(), d)
	if r.State != protocol.StateSucceeded {
		t.Fatalf("%+v", r)
	}
	whole := strings.Repeat("a", 200000) + "\nEND\n"
	sum := sha256.Sum256([]byte(whole))
	if want := "sha256:" + hex.EncodeToString(sum[:]); r.OutputDigest != want {
		t.Fatalf("digest %s, want %s", r.OutputDigest, want)
	}
	if r.Output != whole[len(whole)-MaxOutputTail:] {
		t.Fatalf("output is %d bytes ending %q, want the last %d bytes", len(r.Output), r.Output[max(0, len(r.Output)-10):], MaxOutputTail)
	}
	// The journal record is bounded by the tail, not the whole output.
	raw := rawRecord(t, e.journal, "s")
	if len(raw) > MaxOutputTail+4096 {
		t.Fatalf("journal record is %d bytes", len(raw))
	}
}

func TestShellEnvDirAndOutputs(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o755); err != nil {
		t.Fatal(err)
	}
	e := openTest(t, dir, nil)
	d := shellStep("s", `echo "dir=$(pwd)"; echo "foo=$DROVE_TEST_FOO"
echo "::drove-output token=abc=def"
echo "::drove-output token2=x"
echo "::drove-output token2=y"
echo "::drove-output bad name=x"
echo "::drove-output fromerr=1" >&2
printf '::drove-output crlf=v\r\n'
printf '::drove-output last=no-newline'`)
	d.Action.Env = map[string]string{"DROVE_TEST_FOO": "bar"}
	d.Action.Dir = work
	r := e.Handle(t.Context(), d)
	if r.State != protocol.StateSucceeded {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(r.Output, "dir="+work+"\n") || !strings.Contains(r.Output, "foo=bar\n") {
		t.Fatalf("Env or Dir not applied: %q", r.Output)
	}
	want := map[string]string{"token": "abc=def", "token2": "y", "crlf": "v", "last": "no-newline"}
	if !reflect.DeepEqual(r.Outputs, want) {
		t.Fatalf("outputs %v, want %v", r.Outputs, want)
	}
	if !strings.Contains(r.Output, "::drove-output token=abc=def\n") {
		t.Fatalf("output lines dropped from Output: %q", r.Output)
	}
	// Outputs are journaled and replayed.
	if r2 := e.Handle(t.Context(), d); !reflect.DeepEqual(r2.Outputs, want) || !r2.Replayed {
		t.Fatalf("replayed outputs: %+v", r2)
	}
}

func TestWriteFileStep(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, nil)
	path := filepath.Join(dir, "etc", "drove", "conf")
	d := &protocol.StepDispatch{StepID: "w", Node: testNode, Attempt: 1, Term: 1,
		Action: protocol.Action{Kind: "write-file", Path: path, Content: "x=1\n", Mode: 0o600}}
	r := e.Handle(t.Context(), d)
	if r.State != protocol.StateSucceeded {
		t.Fatalf("%+v", r)
	}
	b, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if err != nil || string(b) != "x=1\n" || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file: %q %v %v", b, fi.Mode(), err)
	}
}

// The crash test: a child process (this test binary, re-run as
// TestHelperProcess) opens the journal and starts steps that record their
// pid in a marker file and then block; the test SIGKILLs the child once the
// markers appear. The steps' command runs the blocking part only on its
// first run, so a re-run finishes.

const helperEnv = "DROVE_AGENT_TEST_HELPER"

func crashSteps(dir string) []*protocol.StepDispatch {
	step := func(id string, idempotent bool) *protocol.StepDispatch {
		marker := filepath.Join(dir, id+".marker")
		d := shellStep(id, fmt.Sprintf(`echo $$ >> %s; if [ "$(wc -l < %s)" -eq 1 ]; then exec sleep 300; fi; echo rerun`, marker, marker))
		d.Idempotent = idempotent
		return d
	}
	return []*protocol.StepDispatch{step("plain", false), step("idem", true)}
}

func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper for TestCrashMidStep")
	}
	e, err := OpenExecutor(filepath.Join(dir, "journal.log"), testNode, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for _, d := range crashSteps(dir) {
		go e.Handle(context.Background(), d)
	}
	// The test kills this process; the timer only bounds a lost helper.
	<-time.After(2 * time.Minute)
	os.Exit(3)
}

func TestCrashMidStep(t *testing.T) {
	dir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	helper.Env = append(os.Environ(), helperEnv+"="+dir)
	var stderr bytes.Buffer
	helper.Stdout, helper.Stderr = &stderr, &stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	helperDone := make(chan error, 1)
	go func() { helperDone <- helper.Wait() }()
	t.Cleanup(func() { helper.Process.Kill() })

	steps := crashSteps(dir)
	var pids []int
	for _, d := range steps {
		marker := filepath.Join(dir, d.StepID+".marker")
		waitFor(t, "marker of "+d.StepID, func() bool {
			select {
			case err := <-helperDone:
				t.Fatalf("helper exited early: %v\n%s", err, stderr.String())
			default:
			}
			return lines(t, marker) == 1
		})
		pids = append(pids, readPID(t, marker))
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-helperDone
	// Pdeathsig: the steps' processes die with the agent.
	for _, pid := range pids {
		waitFor(t, fmt.Sprintf("step process %d to die with the agent", pid), func() bool { return processGone(pid) })
	}

	e := openTest(t, dir, nil)
	for _, d := range steps {
		rec, err := e.journal.Get(d.StepID)
		if err != nil || rec.State != protocol.StateInterrupted || rec.Attempt != 1 {
			t.Fatalf("record of %s after the crash: %+v %v", d.StepID, rec, err)
		}
	}
	plain, idem := steps[0], steps[1]
	plainMarker, idemMarker := filepath.Join(dir, "plain.marker"), filepath.Join(dir, "idem.marker")

	r := e.Handle(t.Context(), plain)
	if r.State != protocol.StateInterrupted || r.Code != protocol.CodeInterrupted ||
		!strings.Contains(r.Error, "restarted") || !strings.Contains(r.Error, "drove retry") {
		t.Fatalf("non-idempotent re-dispatch: %+v", r)
	}
	if n := lines(t, plainMarker); n != 1 {
		t.Fatalf("interrupted non-idempotent step ran again (%d runs)", n)
	}

	r = e.Handle(t.Context(), idem)
	if r.State != protocol.StateSucceeded || r.Replayed || !strings.Contains(r.Output, "rerun") {
		t.Fatalf("idempotent re-dispatch: %+v", r)
	}
	if n := lines(t, idemMarker); n != 2 {
		t.Fatalf("idempotent step ran %d times in all, want 2", n)
	}

	retry := with(plain, func(d *protocol.StepDispatch) { d.Attempt = 2 })
	r = e.Handle(t.Context(), retry)
	if r.State != protocol.StateSucceeded || r.Attempt != 2 || r.Replayed {
		t.Fatalf("operator retry: %+v", r)
	}
	if n := lines(t, plainMarker); n != 2 {
		t.Fatalf("retried step ran %d times in all, want 2", n)
	}
	if r := e.Handle(t.Context(), retry); !r.Replayed || r.State != protocol.StateSucceeded {
		t.Fatalf("retry dispatched again: %+v", r)
	}
	if n := lines(t, plainMarker); n != 2 {
		t.Fatalf("retried step ran %d times in all, want 2", n)
	}
}

func TestOutputTailConcurrentWrites(t *testing.T) {
	tail := newOutputTail(16)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				tail.Write([]byte("abcd"))
			}
		}()
	}
	wg.Wait()
	out, digest := tail.result()
	sum := sha256.Sum256([]byte(strings.Repeat("abcd", 400)))
	if out != "abcdabcdabcdabcd" || digest != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Fatalf("tail %q digest %s", out, digest)
	}
}

func TestOutputTailKeepsLastBytes(t *testing.T) {
	for _, c := range []struct {
		writes []string
		want   string
	}{
		{nil, ""},
		{[]string{"abc"}, "abc"},
		{[]string{"abcdefgh"}, "efgh"},
		{[]string{"ab", "cd", "ef"}, "cdef"},
		{[]string{"a", "bcdefghijk", "l"}, "ijkl"},
		{[]string{"abcdefghijkl", "", "m"}, "jklm"},
	} {
		tail := newOutputTail(4)
		for _, w := range c.writes {
			tail.Write([]byte(w))
		}
		if got, _ := tail.result(); got != c.want {
			t.Errorf("writes %q: tail %q, want %q", c.writes, got, c.want)
		}
	}
}
