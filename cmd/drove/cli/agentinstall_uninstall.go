package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/drove-project/drove/deploy/systemd"
)

// agentUninstallOptions are `drove agent uninstall`'s flags.
type agentUninstallOptions struct {
	Root  string
	Purge bool
}

func newAgentUninstallCmd(g *Globals) *cobra.Command {
	o := &agentUninstallOptions{}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Stop this host's agent and remove what drove agent install wrote",
		Long: `uninstall stops the agent that drove agent install set up under --root
(systemctl disable --now with --root / under systemd, else the process in
<root>/run/drove-agent.pid) and removes the binary, agent.yaml, token and
unit. --purge also removes the agent's data directory (its image store and
journal) and its log. Running it again is harmless.`,
		Example: `  drove agent uninstall
  drove agent uninstall --root /tmp/try --purge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgentUninstall(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringVar(&o.Root, "root", "/", "the --root the agent was installed under")
	cmd.Flags().BoolVar(&o.Purge, "purge", false, "also remove the data directory and the log")
	return cmd
}

func runAgentUninstall(ctx context.Context, g *Globals, o *agentUninstallOptions) error {
	root, err := cleanRoot(o.Root)
	if err != nil {
		return err
	}
	l := layoutUnder(root)
	// The data directory is the installed config's.
	if b, err := os.ReadFile(l.Config); err == nil {
		var c agentOptions
		if yaml.Unmarshal(b, &c) == nil && filepath.IsAbs(c.DataDir) && filepath.Clean(c.DataDir) != "/" {
			l.DataDir = filepath.Clean(c.DataDir)
		}
	}
	if l.system() && systemdRuns() {
		if _, err := os.Stat(l.Unit); err == nil {
			if err := systemctl(ctx, "disable", "--now", systemd.UnitName); err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "stopped and disabled %s\n", systemd.UnitName)
		}
	}
	if pid, ok := runningAgent(l); ok {
		if err := stopPID(ctx, pid, l.Binary); err != nil {
			return err
		}
		fmt.Fprintf(g.Out, "stopped the agent (pid %d)\n", pid)
	}
	removed, err := removeInstall(l, o.Purge)
	for _, p := range removed {
		fmt.Fprintf(g.Out, "removed %s\n", p)
	}
	if err != nil {
		return err
	}
	if l.system() && systemdRuns() {
		return systemctl(ctx, "daemon-reload")
	}
	return nil
}
