package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/lab"
)

func newLabCmd(g *Globals) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run a cluster of agents on this machine",
		Long: `lab starts agents as separate processes on this machine, each on its own
loopback address (127.0.0.11, .12, …) with its own data directory under
--dir, so a many-node cluster can be tried, broken and healed on one host.
"lab up" writes the client context, so status, exec and plan talk to it.

As root, "lab up --netns" puts each node in its own network namespace
(10.213.k.11, .12, …) behind a bridge, so "lab partition NODE" can cut a
node's link while its agent runs on, "lab heal" restores every link, and
--uplink caps each node's link (a tc rate such as 100mbit).`,
	}
	cmd.PersistentFlags().StringVar(&dir, "dir", "", "lab directory (default <data-dir>/lab)")
	labDir := func() string {
		if dir != "" {
			return dir
		}
		return filepath.Join(g.DataDir, "lab")
	}
	var masters, nodes int
	var wait time.Duration
	var netns bool
	var uplink string
	up := &cobra.Command{
		Use:   "up",
		Short: "Start a lab and wait until it has a leader and every member is alive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bin, err := os.Executable()
			if err != nil {
				return err
			}
			l, err := lab.Up(lab.Options{Dir: labDir(), Binary: bin, Masters: masters, Nodes: nodes, NetNS: netns, Uplink: uplink})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Err, "started %d masters and %d nodes in %s; waiting for a leader\n", masters, nodes, l.Dir)
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			st, err := l.WaitReady(ctx)
			if err != nil {
				return fmt.Errorf("%w (logs: %s/*/agent.log; stop it with drove lab down)", err, l.Dir)
			}
			if err := writeContext(g, clientContext{Servers: l.Servers(), Token: l.Token, Lab: l.Dir}); err != nil {
				return err
			}
			printStatus(g, st)
			return nil
		},
	}
	up.Flags().IntVar(&masters, "masters", 3, "coordinators (raft voters)")
	up.Flags().IntVar(&nodes, "nodes", 3, "plain agents")
	up.Flags().DurationVar(&wait, "wait", time.Minute, "how long to wait for the lab to be ready")
	up.Flags().BoolVar(&netns, "netns", false, "run each node in its own network namespace behind a bridge (root only)")
	up.Flags().StringVar(&uplink, "uplink", "", "cap each node's link at this tc rate, e.g. 100mbit (needs --netns)")
	down := &cobra.Command{
		Use: "down", Short: "Stop exactly the processes the lab started", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(labDir())
			if err != nil {
				return err
			}
			if err := l.Down(); err != nil {
				return err
			}
			if c, err := readContext(g); err == nil && c.Lab == l.Dir {
				os.Remove(contextPath(g))
			}
			fmt.Fprintf(g.Err, "lab in %s stopped\n", l.Dir)
			return nil
		},
	}
	nodeCmd := func(use, short string, fn func(*lab.Lab, string) error) *cobra.Command {
		return &cobra.Command{
			Use: use + " NODE", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				l, err := lab.Load(labDir())
				if err != nil {
					return err
				}
				return fn(l, args[0])
			},
		}
	}
	heal := &cobra.Command{
		Use: "heal", Short: "Bring every node's link back up (netns mode)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := lab.Load(labDir())
			if err != nil {
				return err
			}
			return l.Heal()
		},
	}
	cmd.AddCommand(up, down, heal,
		nodeCmd("partition", "Cut a node's link; its agent keeps running (netns mode)", (*lab.Lab).Partition),
		nodeCmd("kill", "Kill a node's agent with SIGKILL", (*lab.Lab).Kill),
		nodeCmd("stop", "Stop a node's agent gracefully (it leaves gossip)", (*lab.Lab).Stop),
		nodeCmd("start", "Start a stopped node's agent again", (*lab.Lab).Start),
	)
	return cmd
}
