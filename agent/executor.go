package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drove-project/drove/protocol"
)

// MaxOutputTail is how much of a step's combined stdout and stderr its
// result (and so its journal record) keeps: the last 64 KiB.
const MaxOutputTail = 64 << 10

// maxErrorLen bounds a result's Error text.
const maxErrorLen = 4 << 10

// maxStepID bounds a StepID (it is a bbolt key).
const maxStepID = 1024

var (
	errStepTimeout = errors.New("step timed out")
	errClosing     = errors.New("agent executor closing")
)

// Executor decides whether a dispatched step runs, runs it at most once per
// attempt, and journals what happened (DESIGN.md invariants 3 and 4).
//
// Handle answers every dispatch with a StepResult:
//
//   - State rejected (protocol.StateRejected): the dispatch was refused and
//     nothing ran or was journaled. Code says why: stale_term (Term is lower
//     than the highest term this agent has seen; a newer leader exists),
//     wrong_node (Node is not this agent), bad_request (no or oversized
//     StepID), internal (the journal failed or the executor is closed).
//   - A recorded result, Replayed set: the step already finished here
//     (succeeded, or failed and Attempt is not higher than the recorded
//     attempt), or was running and this is a duplicate (the first run's
//     result is returned once it ends).
//   - State interrupted, Code interrupted, Replayed set: the agent stopped
//     while the step ran, the step is not idempotent and Attempt is not
//     higher than the recorded attempt; it is not run again.
//   - Otherwise the step runs: succeeded, or failed (Code timeout,
//     unknown_action, internal for a panicking action, empty for an ordinary
//     error or non-zero exit), or interrupted when Close stopped it.
//   - State running: ctx ended before the step did; it runs on, and a later
//     dispatch of the same StepID gets its result.
type Executor struct {
	node    string
	journal *Journal
	actions *Registry
	log     *slog.Logger

	base context.Context // ends on Close; steps run under it
	stop context.CancelCauseFunc
	wg   sync.WaitGroup // running steps

	mu      sync.Mutex
	closed  bool
	running map[string]*run
}

// run is one step running now.
type run struct {
	done   chan struct{} // closed when result is set
	result *protocol.StepResult
	dups   int // duplicate dispatches that waited for it (under Executor.mu)
}

// OpenExecutor opens the journal at path (see OpenJournal) for the agent
// whose node ID is node. A nil actions means Builtins(); a nil log discards.
// log should already name the node (the agent's does).
func OpenExecutor(path string, node string, actions *Registry, log *slog.Logger) (*Executor, error) {
	if !protocol.ValidID(node) {
		return nil, fmt.Errorf("open executor: invalid node ID %q", node)
	}
	if actions == nil {
		actions = Builtins()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	j, interrupted, err := OpenJournal(path)
	if err != nil {
		return nil, fmt.Errorf("open executor: %w", err)
	}
	if j.Ignored > 0 {
		log.Warn("journal ended in a torn write (the agent died while writing); ignored it", "bytes", j.Ignored)
	}
	for _, id := range interrupted {
		log.Warn("step was running when the agent stopped; marked interrupted", "step", id)
	}
	base, stop := context.WithCancelCause(context.Background())
	return &Executor{
		node: node, journal: j, actions: actions, log: log,
		base: base, stop: stop, running: map[string]*run{},
	}, nil
}

// Close stops running steps (their process groups are killed and they are
// journaled as interrupted), waits for them, and closes the journal.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.stop(errClosing)
	e.wg.Wait()
	return e.journal.Close()
}

// verdict is what to do with a dispatch of a step the journal knows.
type verdict int

const (
	verdictRun         verdict = iota // run the step (again)
	verdictReplay                     // answer with the recorded result
	verdictInterrupted                // answer interrupted, do not run
)

// decide applies DESIGN.md invariant 3 to a dispatch and the step's record.
func decide(rec Record, found bool, d *protocol.StepDispatch) verdict {
	if !found {
		return verdictRun
	}
	switch rec.State {
	case protocol.StateSucceeded:
		return verdictReplay
	case protocol.StateFailed:
		if d.Attempt > rec.Attempt {
			return verdictRun
		}
		return verdictReplay
	default: // interrupted, or running with no run in this process: the same
		if d.Attempt > rec.Attempt || d.Idempotent {
			return verdictRun
		}
		return verdictInterrupted
	}
}

// Handle decides about one dispatch and, if the step is to run, runs it and
// returns its result. See Executor for every kind of answer.
func (e *Executor) Handle(ctx context.Context, d *protocol.StepDispatch) *protocol.StepResult {
	if d == nil {
		return &protocol.StepResult{Node: e.node, State: protocol.StateRejected, Code: protocol.CodeBadRequest, Error: "no dispatch"}
	}
	switch {
	case d.StepID == "" || len(d.StepID) > maxStepID:
		return e.reject(d, protocol.CodeBadRequest, "step ID must be 1 to %d bytes", maxStepID)
	case d.Node != e.node:
		return e.reject(d, protocol.CodeWrongNode, "dispatch for node %q reached node %q", d.Node, e.node)
	}
	log := e.log.With("step", d.StepID, "term", d.Term, "attempt", d.Attempt)

	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return e.reject(d, protocol.CodeInternal, "agent executor is closed")
	}
	ok, highest, err := e.journal.ObserveTerm(d.Term)
	if err != nil {
		e.mu.Unlock()
		log.Error("check term", "err", err)
		return e.reject(d, protocol.CodeInternal, "%v", err)
	}
	if !ok {
		e.mu.Unlock()
		log.Warn("rejected dispatch from an old leader", "highest", highest, "leader", d.Leader)
		return e.reject(d, protocol.CodeStaleTerm, "term %d is older than term %d this agent has seen", d.Term, highest)
	}
	if r := e.running[d.StepID]; r != nil {
		r.dups++
		e.mu.Unlock()
		log.Info("duplicate dispatch of a running step; waiting for it")
		return e.wait(ctx, d, r, true)
	}
	rec, err := e.journal.Get(d.StepID)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNoRecord) {
		e.mu.Unlock()
		log.Error("read journal", "err", err)
		return e.reject(d, protocol.CodeInternal, "%v", err)
	}
	switch decide(rec, found, d) {
	case verdictReplay:
		e.mu.Unlock()
		log.Info("replaying recorded result", "state", rec.State)
		res := cloneResult(rec.Result)
		res.Replayed = true
		// A success answers a later attempt too: the step is not run
		// again, and the leader must take the answer as this attempt's.
		res.Attempt = max(res.Attempt, d.Attempt)
		return res
	case verdictInterrupted:
		e.mu.Unlock()
		log.Warn("not re-running an interrupted step that is not idempotent")
		return interruptedReply(rec, e.node)
	}
	// Claim the step (duplicates now wait for this run), then journal its
	// start outside the lock, so concurrent steps share journal commits
	// instead of queueing behind each other's fsync.
	r := &run{done: make(chan struct{})}
	e.running[d.StepID] = r
	e.wg.Add(1)
	e.mu.Unlock()
	started := time.Now()
	if err := e.journal.Begin(d.StepID, d.Attempt, d.Term, started); err != nil {
		log.Error("journal step start; not running it", "err", err)
		res := e.reject(d, protocol.CodeInternal, "%v", err)
		r.result = res
		e.mu.Lock()
		delete(e.running, d.StepID)
		e.mu.Unlock()
		close(r.done)
		e.wg.Done()
		return res
	}

	log.Info("running step", "kind", d.Action.Kind)
	go e.execute(log, r, d, started)
	return e.wait(ctx, d, r, false)
}

// wait returns r's result once it ends, or a running answer if ctx ends
// first.
func (e *Executor) wait(ctx context.Context, d *protocol.StepDispatch, r *run, replayed bool) *protocol.StepResult {
	select {
	case <-r.done:
		res := cloneResult(r.result)
		res.Replayed = replayed
		res.Attempt = max(res.Attempt, d.Attempt) // the run that was going on answers this attempt
		return res
	case <-ctx.Done():
		return &protocol.StepResult{
			StepID: d.StepID, Node: e.node, Attempt: d.Attempt, State: protocol.StateRunning,
			Error: fmt.Sprintf("stopped waiting (%v); the step runs on: dispatch it again for its result", context.Cause(ctx)),
		}
	}
}

// execute runs a step admitted by Handle, journals its result and hands it
// to the waiters.
func (e *Executor) execute(log *slog.Logger, r *run, d *protocol.StepDispatch, started time.Time) {
	defer e.wg.Done()
	res := e.runAction(d, started)
	if err := e.journal.Finish(d.StepID, res, time.Now()); err != nil {
		// The record stays running, so a restarted agent reports the step
		// interrupted rather than pretending it never ran.
		log.Error("journal step result", "err", err)
	}
	log.Info("step finished", "state", res.State, "exit", res.ExitCode, "code", res.Code, "ms", res.DurationMs)
	r.result = res
	e.mu.Lock()
	delete(e.running, d.StepID)
	e.mu.Unlock()
	close(r.done)
}

// runAction runs the step's action under the executor's context and the
// step's timeout, and builds its bounded result.
func (e *Executor) runAction(d *protocol.StepDispatch, started time.Time) (res *protocol.StepResult) {
	res = &protocol.StepResult{StepID: d.StepID, Node: e.node, Attempt: d.Attempt}
	act, ok := e.actions.Lookup(d.Action.Kind)
	if !ok {
		res.State, res.Code, res.ExitCode = protocol.StateFailed, protocol.CodeUnknownAction, -1
		res.Error = bound(fmt.Sprintf("this agent has no action of kind %q", d.Action.Kind), maxErrorLen)
		return res
	}
	ctx, cancel := e.base, context.CancelFunc(func() {})
	if d.TimeoutMs > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, time.Duration(d.TimeoutMs)*time.Millisecond, errStepTimeout)
	}
	defer cancel()

	out := newOutputTail(MaxOutputTail)
	defer func() {
		if p := recover(); p != nil {
			res.State, res.Code, res.ExitCode = protocol.StateFailed, protocol.CodeInternal, -1
			res.Error = bound(fmt.Sprintf("action %s panicked: %v", d.Action.Kind, p), maxErrorLen)
			res.Output, res.OutputDigest = out.result()
			res.DurationMs = time.Since(started).Milliseconds()
		}
	}()
	code, outputs, err := act.Run(ctx, d.Action, out)
	res.DurationMs = time.Since(started).Milliseconds()
	res.ExitCode, res.Outputs = code, boundOutputs(outputs)
	res.Output, res.OutputDigest = out.result()
	unfinished := err != nil || code != 0
	switch {
	case unfinished && errors.Is(context.Cause(ctx), errStepTimeout):
		res.State, res.Code = protocol.StateFailed, protocol.CodeTimeout
		res.Error = fmt.Sprintf("step timed out after %s; its processes were killed", time.Duration(d.TimeoutMs)*time.Millisecond)
	case unfinished && e.base.Err() != nil:
		res.State, res.Code = protocol.StateInterrupted, protocol.CodeInterrupted
		res.Error = "the agent stopped while the step ran; its processes were killed"
	case err != nil:
		res.State, res.Error = protocol.StateFailed, bound(err.Error(), maxErrorLen)
	case code != 0:
		res.State, res.Error = protocol.StateFailed, fmt.Sprintf("exit status %d", code)
	default:
		res.State = protocol.StateSucceeded
	}
	return res
}

func (e *Executor) reject(d *protocol.StepDispatch, code protocol.ErrorCode, format string, args ...any) *protocol.StepResult {
	return &protocol.StepResult{
		StepID: d.StepID, Node: e.node, Attempt: d.Attempt, State: protocol.StateRejected,
		Code: code, Error: bound(fmt.Sprintf(format, args...), maxErrorLen),
	}
}

// interruptedReply answers a dispatch of an interrupted step that must not
// run again, keeping whatever output the record holds.
func interruptedReply(rec Record, node string) *protocol.StepResult {
	res := &protocol.StepResult{StepID: rec.StepID, Node: node, Attempt: rec.Attempt}
	if rec.Result != nil {
		res = cloneResult(rec.Result)
	}
	res.State, res.Code, res.Replayed = protocol.StateInterrupted, protocol.CodeInterrupted, true
	res.Error = fmt.Sprintf("the agent restarted while step %s (attempt %d) was running, so it may have run partly; "+
		"it is not idempotent and is not run again on its own: `drove retry` re-runs it", rec.StepID, rec.Attempt)
	return res
}

func cloneResult(r *protocol.StepResult) *protocol.StepResult {
	c := *r
	if r.Outputs != nil {
		c.Outputs = make(map[string]string, len(r.Outputs))
		for k, v := range r.Outputs {
			c.Outputs[k] = v
		}
	}
	return &c
}

// bound cuts s to at most n bytes of valid UTF-8.
func bound(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// boundOutputs keeps outputs (in name order) up to MaxOutputsSize in total,
// as valid UTF-8, so what is journaled is what JSON carries.
func boundOutputs(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out, size := make(map[string]string, len(m)), 0
	for _, k := range names {
		size += len(k) + len(m[k])
		if size > MaxOutputsSize {
			break
		}
		out[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(m[k], "\uFFFD")
	}
	return out
}

// outputTail is the writer a step prints to: it keeps the last max bytes
// and hashes everything. Safe for concurrent use.
type outputTail struct {
	mu  sync.Mutex
	max int
	buf []byte
	sum hash.Hash
}

var _ io.Writer = (*outputTail)(nil)

func newOutputTail(max int) *outputTail {
	return &outputTail{max: max, sum: sha256.New()}
}

func (t *outputTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sum.Write(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// result is the tail (valid UTF-8; a rune cut at its start becomes U+FFFD)
// and "sha256:<hex>" of the whole output.
func (t *outputTail) result() (tail, digest string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), "sha256:" + hex.EncodeToString(t.sum.Sum(nil))
}
