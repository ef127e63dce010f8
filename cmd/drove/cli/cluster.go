package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/atomicfile"
	"github.com/drove-project/drove/internal/clusterauth"
	"github.com/drove-project/drove/internal/progress"
	"github.com/drove-project/drove/protocol"
)

func newStatusCmd(g *Globals) *cobra.Command {
	var cf clientFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show members, the raft leader and voters, and plan progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutputFormat(output); err != nil {
				return err
			}
			nc, err := cf.connect(g)
			if err != nil {
				return err
			}
			defer nc.Close()
			var out statusOutput
			if err := cf.call(cmd.Context(), nc, &protocol.StatusRequest{}, &out.Status); err != nil {
				return err
			}
			// Active distributions come from the tracker on the leader; a
			// cluster without a leader still shows its members.
			var ds protocol.DistributionStatus
			if err := cf.call(cmd.Context(), nc, &protocol.DistributionStatusRequest{}, &ds); err == nil {
				for _, d := range ds.Distributions {
					if !d.Done {
						out.Distributions = append(out.Distributions, d)
					}
				}
			}
			if output == "json" || output == "yaml" {
				return writeStructured(g.Out, output, out)
			}
			printStatus(g, &out.Status)
			printDistributions(g, out.Distributions)
			return nil
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

// statusOutput is `drove status -o json`: the coordinator's Status plus
// the distributions under way.
type statusOutput struct {
	protocol.Status
	Distributions []protocol.DistributionProgress `json:"distributions,omitempty"`
}

func printDistributions(g *Globals, ds []protocol.DistributionProgress) {
	for _, d := range ds {
		complete, peers := 0, 0
		var have, total, rate int64
		for _, p := range d.Peers {
			if p.Peer.Seed {
				continue
			}
			peers++
			have += p.Have
			total += p.Total
			rate += p.RateBps
			if p.Complete {
				complete++
			}
		}
		fmt.Fprintf(g.Out, "\ndistribution %s: %d/%d nodes complete, %s of %s, %s/s\n", d.ID, complete, peers,
			progress.HumanBytes(have), progress.HumanBytes(total), progress.HumanBytes(rate))
	}
}

func printStatus(g *Globals, st *protocol.Status) {
	voters := map[string]bool{}
	for _, v := range st.Voters {
		voters[v] = true
	}
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tROLES\tSTATE\tRAFT")
	for _, m := range st.Members {
		raft := ""
		switch {
		case m.ID == st.Leader:
			raft = "leader"
		case voters[m.ID]:
			raft = "voter"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, m.Address, strings.Join(m.Roles, ","), m.State, raft)
	}
	tw.Flush()
	fmt.Fprintf(g.Out, "\nleader: %s (term %d), voters: %s\n", orNone(st.Leader), st.Term, strings.Join(st.Voters, ", "))
	if len(st.Plans) > 0 {
		fmt.Fprintln(g.Out)
		printPlans(g, st.Plans)
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func printPlans(g *Globals, plans []protocol.PlanSummary) {
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PLAN\tNAME\tSTATE\tDONE\tFAILED\tSTEPS")
	for _, p := range plans {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", p.ID, p.Name, p.State, p.Succeeded, p.Failed, p.Steps)
	}
	tw.Flush()
}

type execOptions struct {
	Roles    []string
	Nodes    []string
	Parallel int
	Timeout  time.Duration
	client   clientFlags
}

func newExecCmd(g *Globals) *cobra.Command {
	o := &execOptions{}
	cmd := &cobra.Command{
		Use:   "exec [--roles R] [--nodes N] [--parallel K] -- COMMAND",
		Short: "Run a shell command on nodes, as a plan through the coordinator",
		Long: `exec runs COMMAND with sh -c on every selected node (all nodes by default),
at most --parallel at a time (0: all at once), as a plan the coordinator
records in raft, so it runs exactly once per node even across leader
failover. Each node's output is printed prefixed by the node; exec exits
non-zero if any node failed.`,
		Example: "  drove exec --roles master -- uptime\n  drove exec --parallel 1 -- 'systemctl restart kubelet'",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec := o.plan(strings.Join(args, " "))
			return runPlanAndWait(cmd.Context(), g, &o.client, spec)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Roles, "roles", nil, "only nodes with one of these roles")
	f.StringSliceVar(&o.Nodes, "nodes", nil, "only these nodes (IDs)")
	f.IntVar(&o.Parallel, "parallel", 0, "nodes at a time (0: all)")
	f.DurationVar(&o.Timeout, "step-timeout", 0, "fail a node's command after this long (0: no limit)")
	o.client.add(f)
	return cmd
}

func (o *execOptions) plan(command string) protocol.PlanSpec {
	return protocol.PlanSpec{Name: "exec", Phases: []protocol.PhaseSpec{{
		Name: "exec", Parallel: o.Parallel,
		Steps: []protocol.StepSpec{{
			Name: "exec", Target: protocol.Selector{Roles: o.Roles, Nodes: o.Nodes},
			Action:    protocol.Action{Kind: "shell", Command: command},
			TimeoutMs: o.Timeout.Milliseconds(),
		}},
	}}}
}

// runPlanAndWait submits a plan, waits for it to finish and prints each
// node's output.
func runPlanAndWait(ctx context.Context, g *Globals, cf *clientFlags, spec protocol.PlanSpec) error {
	nc, err := cf.connect(g)
	if err != nil {
		return err
	}
	defer nc.Close()
	var sub protocol.PlanSubmitted
	if err := cf.call(ctx, nc, &protocol.PlanSubmit{Plan: spec, PlanID: protocol.NewPlanID(time.Now())}, &sub); err != nil {
		return err
	}
	fmt.Fprintf(g.Err, "plan %s submitted\n", sub.PlanID)
	var detail protocol.PlanDetail
	for {
		if err := cf.call(ctx, nc, &protocol.PlanGetRequest{PlanID: sub.PlanID}, &detail); err != nil {
			return err
		}
		if detail.Settled() {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	printOutputs(g, &detail)
	if detail.Summary.State != "succeeded" {
		return &exitError{code: exitFailed, err: fmt.Errorf("plan %s failed on %d of %d node-steps", sub.PlanID, detail.Summary.Failed, detail.Summary.Steps)}
	}
	return nil
}

func printOutputs(g *Globals, d *protocol.PlanDetail) {
	for _, ph := range d.Phases {
		steps := append([]protocol.NodeStepStatus(nil), ph.Steps...)
		sort.SliceStable(steps, func(i, j int) bool { return steps[i].Node < steps[j].Node })
		for _, s := range steps {
			for _, line := range strings.Split(strings.TrimRight(s.Output, "\n"), "\n") {
				if line != "" {
					fmt.Fprintf(g.Out, "%s: %s\n", s.Node, line)
				}
			}
			if s.State != protocol.StateSucceeded {
				fmt.Fprintf(g.Err, "%s: %s (exit %d) %s\n", s.Node, s.State, s.ExitCode, s.Error)
			}
		}
	}
}

func newPlanCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "plan", Short: "List and show plans"}
	var cf clientFlags
	var output string
	ls := &cobra.Command{
		Use: "ls", Short: "List plans", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pl protocol.PlanList
			if err := cf.request(cmd.Context(), g, &protocol.PlanListRequest{}, &pl); err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				return writeStructured(g.Out, output, pl.Plans)
			}
			printPlans(g, pl.Plans)
			return nil
		},
	}
	show := &cobra.Command{
		Use: "show PLAN", Short: "Show one plan's steps on every node", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var d protocol.PlanDetail
			if err := cf.request(cmd.Context(), g, &protocol.PlanGetRequest{PlanID: args[0]}, &d); err != nil {
				return err
			}
			if output == "json" || output == "yaml" {
				return writeStructured(g.Out, output, d)
			}
			fmt.Fprintf(g.Out, "plan %s (%s): %s, %d/%d done, %d failed\n", d.Summary.ID, d.Summary.Name, d.Summary.State, d.Summary.Succeeded, d.Summary.Steps, d.Summary.Failed)
			tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PHASE\tSTEP\tNODE\tSTATE\tATTEMPT\tEXIT\tERROR")
			for _, ph := range d.Phases {
				for _, s := range ph.Steps {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", ph.Name, s.Step, s.Node, s.State, s.Attempt, s.ExitCode, s.Error)
				}
			}
			return tw.Flush()
		},
	}
	for _, c := range []*cobra.Command{ls, show} {
		cf.add(c.Flags())
		c.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	}
	cmd.AddCommand(ls, show)
	return cmd
}

func newRetryCmd(g *Globals) *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "retry PLAN [STEP-ID]",
		Short: "Re-run a plan's failed or interrupted steps",
		Long: `retry sets a plan's failed, interrupted and skipped node-steps (or the one
STEP-ID names, as shown by "drove plan show") back to pending; the leader
runs them again with a new attempt number.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &protocol.RetryRequest{PlanID: args[0]}
			if len(args) == 2 {
				req.StepID = args[1]
			}
			var ack protocol.Ack
			if err := cf.request(cmd.Context(), g, req, &ack); err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "plan %s: retrying\n", args[0])
			return nil
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

func newTokenCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Make cluster join tokens"}
	var out string
	gen := &cobra.Command{
		Use: "generate", Short: "Print a new random cluster token (or write it to -o FILE, mode 0600)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := clusterauth.GenerateToken()
			if err != nil {
				return err
			}
			if out == "" {
				fmt.Fprintln(g.Out, t)
				return nil
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists: not overwriting a token", out)
			}
			return atomicfile.WriteFile(out, []byte(t+"\n"), 0o600)
		},
	}
	gen.Flags().StringVarP(&out, "output", "o", "", "file to write the token to")
	cmd.AddCommand(gen, newTokenCACmd(g))
	return cmd
}
