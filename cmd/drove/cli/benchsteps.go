package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/lab"
	"github.com/drove-project/drove/protocol"
)

type benchStepsOptions struct {
	Agents  int
	Masters int
	Steps   int
	Steady  int
	Output  string
	Dir     string
}

// benchStepsResult is what `drove bench steps -o json` prints.
type benchStepsResult struct {
	Agents           int     `json:"agents"`
	Masters          int     `json:"masters"`
	Steps            int     `json:"steps"`
	Seconds          float64 `json:"seconds"`
	ResultsPerSec    float64 `json:"resultsPerSecond"`
	P50Ms            float64 `json:"dispatchToResultP50Ms"`
	P99Ms            float64 `json:"dispatchToResultP99Ms"`
	NATSP50Ms        float64 `json:"natsRequestReplyP50Ms"`
	NATSP99Ms        float64 `json:"natsRequestReplyP99Ms"`
	P99OverNATSP99   float64 `json:"steadyP99OverNatsP99"`
	SteadyPlans      int     `json:"steadyPlans"`
	SteadyP50Ms      float64 `json:"steadyDispatchToResultP50Ms"`
	SteadyP99Ms      float64 `json:"steadyDispatchToResultP99Ms"`
	GoalPerSec       float64 `json:"goalResultsPerSecond"`
	GoalP99Ms        float64 `json:"goalP99Ms"`
	MeetsRateGoal    bool    `json:"meetsRateGoal"`
	MeetsLatencyGoal bool    `json:"meetsLatencyGoal"`
}

func newBenchStepsCmd(g *Globals) *cobra.Command {
	o := &benchStepsOptions{}
	cmd := &cobra.Command{
		Use:   "steps",
		Short: "Committed step results per second through a real lab, against raw NATS request-reply",
		Long: `bench steps starts a lab (real agent processes, raft and NATS on loopback),
runs --steps node-steps of a no-op action spread over --agents agents (one
plan per step round, all plans at once), and reports committed results per
second and the dispatch-to-result latency as raft recorded it. As the
baseline it measures plain NATS request-reply latency through the same
lab's servers in the same run. Goals: >= 2,000 results/s, p99 <= 20 ms.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(o.Output); err != nil {
				return err
			}
			if o.Agents < 1 || o.Steps < o.Agents {
				return usageErrorf("need --agents >= 1 and --steps >= --agents")
			}
			return runBenchSteps(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Agents, "agents", 10, "plain agents that run steps")
	f.IntVar(&o.Masters, "masters", 3, "coordinators")
	f.IntVar(&o.Steps, "steps", 1000, "node-steps to run")
	f.IntVar(&o.Steady, "steady", 50, "then run this many plans one after another (one step on every agent) to measure latency without queueing")
	f.StringVar(&o.Dir, "dir", "", "lab directory (default: a temporary one)")
	f.StringVarP(&o.Output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func runBenchSteps(ctx context.Context, g *Globals, o *benchStepsOptions) error {
	dir, cleanup, err := benchDir(o.Dir, "steps", false)
	if err != nil {
		return err
	}
	defer cleanup()
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	// Agents start at .101 so a bench does not collide with a `lab up`.
	l, nc, err := startBenchLab(ctx, lab.Options{Dir: dir, Binary: bin, Masters: o.Masters, Nodes: o.Agents, FirstIP: 101})
	if err != nil {
		return err
	}
	defer l.Down()
	defer nc.Close()
	cf := &clientFlags{Timeout: time.Minute}

	fmt.Fprintln(g.Err, "baseline: NATS request-reply through the lab's servers ...")
	natsLat, err := natsBaseline(nc, l, 2000)
	if err != nil {
		return err
	}

	rounds := o.Steps / o.Agents
	fmt.Fprintf(g.Err, "running %d plans x %d agents of no-op steps ...\n", rounds, o.Agents)
	spec := protocol.PlanSpec{Name: "bench", Phases: []protocol.PhaseSpec{{Name: "bench", Steps: []protocol.StepSpec{{
		Name: "noop", Target: protocol.Selector{Roles: []string{"node"}}, Action: protocol.Action{Kind: "noop"},
	}}}}}
	start := time.Now()
	ids := make([]string, rounds)
	errs := make(chan error, rounds)
	for i := range ids {
		go func(i int) {
			var sub protocol.PlanSubmitted
			err := cf.call(ctx, nc, &protocol.PlanSubmit{Plan: spec, PlanID: protocol.NewPlanID(time.Now())}, &sub)
			ids[i] = sub.PlanID
			errs <- err
		}(i)
	}
	for range ids {
		if err := <-errs; err != nil {
			return err
		}
	}
	// The burst ends when its last result was committed (raft's stamp).
	var lat []float64
	var lastFinish int64
	for _, id := range ids {
		d, err := waitDone(ctx, cf, nc, id)
		if err != nil {
			return err
		}
		lastFinish = max(lastFinish, stepLatencies(d, &lat))
	}
	elapsed := time.UnixMilli(lastFinish).Sub(start)
	// Steady load: one plan at a time, so latency is the pipeline's, not
	// the queue's.
	var steady []float64
	for i := 0; i < o.Steady; i++ {
		var sub protocol.PlanSubmitted
		if err := cf.call(ctx, nc, &protocol.PlanSubmit{Plan: spec, PlanID: protocol.NewPlanID(time.Now())}, &sub); err != nil {
			return err
		}
		d, err := waitDone(ctx, cf, nc, sub.PlanID)
		if err != nil {
			return err
		}
		stepLatencies(d, &steady)
	}
	n := rounds * o.Agents
	r := benchStepsResult{
		Agents: o.Agents, Masters: o.Masters, Steps: n, Seconds: elapsed.Seconds(),
		ResultsPerSec: float64(n) / elapsed.Seconds(),
		P50Ms:         percentile(lat, 50), P99Ms: percentile(lat, 99),
		NATSP50Ms: percentile(natsLat, 50), NATSP99Ms: percentile(natsLat, 99),
		GoalPerSec: 2000, GoalP99Ms: 20,
		SteadyPlans: o.Steady, SteadyP50Ms: percentile(steady, 50), SteadyP99Ms: percentile(steady, 99),
	}
	if r.NATSP99Ms > 0 {
		r.P99OverNATSP99 = r.SteadyP99Ms / r.NATSP99Ms
	}
	r.MeetsRateGoal = r.ResultsPerSec >= r.GoalPerSec
	r.MeetsLatencyGoal = r.SteadyP99Ms <= r.GoalP99Ms
	if o.Output != "table" {
		return writeStructured(g.Out, o.Output, r)
	}
	fmt.Fprintf(g.Out, "lab:                       %d masters, %d agents\n", o.Masters, o.Agents)
	fmt.Fprintf(g.Out, "committed results:         %d in %.2f s = %.0f/s (goal >= %.0f: %s)\n", n, r.Seconds, r.ResultsPerSec, r.GoalPerSec, pass(r.MeetsRateGoal))
	fmt.Fprintf(g.Out, "dispatch-to-result, burst: p50 %.1f ms, p99 %.1f ms (all %d at once: mostly queueing)\n", r.P50Ms, r.P99Ms, n)
	fmt.Fprintf(g.Out, "dispatch-to-result, steady: p50 %.1f ms, p99 %.1f ms over %d plans one at a time (goal p99 <= %.0f ms: %s)\n", r.SteadyP50Ms, r.SteadyP99Ms, o.Steady, r.GoalP99Ms, pass(r.MeetsLatencyGoal))
	fmt.Fprintf(g.Out, "NATS request-reply:        p50 %.2f ms, p99 %.2f ms (baseline)\n", r.NATSP50Ms, r.NATSP99Ms)
	fmt.Fprintf(g.Out, "steady p99 / NATS p99:     %.1f (two raft commits and two journal syncs per step)\n", r.P99OverNATSP99)
	return nil
}

// stepLatencies appends each node-step's dispatch-to-result time (ms) to
// lat and returns the latest finish time.
func stepLatencies(d protocol.PlanDetail, lat *[]float64) (lastFinish int64) {
	for _, ph := range d.Phases {
		for _, s := range ph.Steps {
			*lat = append(*lat, float64(s.FinishedAt-s.DispatchedAt))
			lastFinish = max(lastFinish, s.FinishedAt)
		}
	}
	return lastFinish
}

// waitDone polls a plan until it succeeds (or fails: an error).
func waitDone(ctx context.Context, cf *clientFlags, nc *nats.Conn, id string) (protocol.PlanDetail, error) {
	for {
		var d protocol.PlanDetail
		if err := cf.call(ctx, nc, &protocol.PlanGetRequest{PlanID: id}, &d); err != nil {
			return d, err
		}
		switch d.Summary.State {
		case "succeeded":
			return d, nil
		case "failed":
			return d, fmt.Errorf("bench plan %s failed", id)
		}
		// Latency comes from raft's stamps, not from this loop: poll gently
		// so the bench does not load the coordinators it measures.
		time.Sleep(10 * time.Millisecond)
	}
}

// natsBaseline times request-reply round trips between two clients
// connected to different coordinators' servers (so they cross a route, as
// dispatches do).
func natsBaseline(requester *nats.Conn, l *lab.Lab, n int) ([]float64, error) {
	responder, err := l.Connect()
	if err != nil {
		return nil, err
	}
	defer responder.Close()
	subject := "_INBOX.drove-bench." + fmt.Sprint(time.Now().UnixNano())
	sub, err := responder.Subscribe(subject, func(m *nats.Msg) { m.Respond(m.Data) })
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	if err := responder.Flush(); err != nil {
		return nil, err
	}
	payload := make([]byte, 256)
	// Warm up until the subscription has propagated.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := requester.Request(subject, payload, time.Second); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("NATS baseline: no reply on %s", subject)
		}
	}
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if _, err := requester.Request(subject, payload, 5*time.Second); err != nil {
			return nil, fmt.Errorf("NATS baseline: %w", err)
		}
		out = append(out, float64(time.Since(t0).Microseconds())/1000)
	}
	return out, nil
}

func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// startBenchLab starts a benchmark's lab, waits until a leader exists and
// every member is alive, and connects to its coordinators. The caller
// stops the lab (and closes the connection) when done.
func startBenchLab(ctx context.Context, o lab.Options) (*lab.Lab, *nats.Conn, error) {
	l, err := lab.Up(o)
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := l.WaitReady(rctx); err != nil {
		l.Down()
		return nil, nil, err
	}
	nc, err := l.Connect()
	if err != nil {
		l.Down()
		return nil, nil, err
	}
	return l, nc, nil
}
