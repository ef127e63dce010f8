package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/drove-project/drove/deploy/systemd"
	"github.com/drove-project/drove/internal/clusterauth"
)

// agentInstallOptions are `drove agent install`'s flags.
type agentInstallOptions struct {
	Root      string
	Join      []string
	Token     string
	TokenFile string
	Roles     []string
	Labels    []string
	Config    string
	Media     string
	Binary    string
	NoStart   bool
	// Settle is how long a directly started agent must stay up to count
	// as running.
	Settle time.Duration
}

func newAgentInstallCmd(g *Globals) *cobra.Command {
	return agentInstallCmd(g, &agentInstallOptions{})
}

// agentInstallCmd builds the command around o, so tests can read what
// flags set.
func agentInstallCmd(g *Globals, o *agentInstallOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install this host's agent: binary, config, token and systemd unit, then start it",
		Long: `install makes this host run the drove agent. It writes, under --root
(default /):

  usr/local/bin/drove                  the drove binary (--binary, default this one)
  etc/drove/agent.yaml                 the agent's settings (drove agent --config)
  etc/drove/token                      the cluster token, mode 0600
  etc/systemd/system/drove-agent.service

With --root / on a host that runs systemd it then runs systemctl
daemon-reload and systemctl enable --now drove-agent (restarting the unit
when anything changed). Otherwise, unless --no-start, it starts the agent as
a detached process logging to <root>/var/log/drove-agent.log with its pid
in <root>/run/drove-agent.pid; an install under another root is
self-contained: its config, unit and data directory name paths under that
root, so it can run beside the host's own agent or in a test.

--config FILE is a base agent.yaml (media carry one); flags override its
join, roles, labels and media settings. Running install again with the same
settings changes nothing and leaves a running agent alone.`,
		Example: `  drove agent install --join 10.0.0.1,10.0.0.2 --token-file token --roles node --labels zone=a
  ROOT=/tmp/try; drove agent install --root $ROOT --join 10.0.0.1 --token-file token
  drove agent install --config /media/drove/agent.yaml --token-file /media/drove/token --media /media/drove/image`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgentInstall(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Root, "root", "/", "install under this directory instead of /")
	f.StringSliceVar(&o.Join, "join", nil, "gossip addresses of cluster members to join (host or host:port)")
	f.StringVar(&o.Token, "token", "", "cluster join token (prefer --token-file)")
	f.StringVar(&o.TokenFile, "token-file", "", "file holding the cluster join token")
	f.StringSliceVar(&o.Roles, "roles", nil, "roles of this node (default: the config's, else node)")
	f.StringSliceVar(&o.Labels, "labels", nil, "labels k=v (repeatable or comma-separated; replace the config's)")
	f.StringVar(&o.Config, "config", "", "base agent.yaml whose settings the flags override")
	f.StringVar(&o.Media, "media", "", "OCI image layout on the media this host is installed from (recorded in agent.yaml)")
	f.StringVar(&o.Binary, "binary", "", "drove binary to install (default: this one)")
	f.BoolVar(&o.NoStart, "no-start", false, "write the files but do not start the agent (systemd: enable without starting)")
	f.DurationVar(&o.Settle, "settle", 2*time.Second, "how long a directly started agent must stay up to count as running")
	return cmd
}

// installLayout is where install puts each file under a root.
type installLayout struct {
	Root    string
	Binary  string
	EtcDir  string
	Config  string
	Token   string
	Unit    string
	Log     string
	PID     string
	DataDir string
}

// layoutUnder returns the layout under root, which must be absolute.
func layoutUnder(root string) installLayout {
	j := func(p string) string { return filepath.Join(root, p) }
	return installLayout{
		Root: root, Binary: j(systemd.Binary), EtcDir: j("/etc/drove"), Config: j(systemd.Config),
		Token: j("/etc/drove/token"), Unit: j("/etc/systemd/system/" + systemd.UnitName),
		Log: j("/var/log/drove-agent.log"), PID: j("/run/drove-agent.pid"), DataDir: j("/var/lib/drove"),
	}
}

// system reports whether the layout is the host's own (root /).
func (l installLayout) system() bool { return l.Root == "/" }

// cleanRoot makes --root absolute and clean.
func cleanRoot(root string) (string, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return "", usageErrorf("--root %q: %v", root, err)
	}
	return abs, nil
}

// systemdRuns reports whether this host booted with systemd.
func systemdRuns() bool {
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

func runAgentInstall(ctx context.Context, g *Globals, o *agentInstallOptions) error {
	root, err := cleanRoot(o.Root)
	if err != nil {
		return err
	}
	l := layoutUnder(root)
	cfg, token, err := o.agentConfig(l)
	if err != nil {
		return err
	}
	src, err := o.binary()
	if err != nil {
		return err
	}
	changed, err := writeInstall(l, src, cfg, token)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "installed the drove agent under %s (%s)\n", root, changedWord(changed))
	if l.system() && systemdRuns() {
		return startUnit(ctx, g, changed, o.NoStart)
	}
	if o.NoStart {
		fmt.Fprintf(g.Out, "not started (--no-start): run %s agent --config %s\n", l.Binary, l.Config)
		return nil
	}
	return startDetached(ctx, g, l, changed, o.Settle)
}

func changedWord(changed bool) string {
	if changed {
		return "files written"
	}
	return "unchanged"
}

// binary is the drove binary to install: --binary, else this process's.
func (o *agentInstallOptions) binary() (string, error) {
	if o.Binary != "" {
		st, err := os.Stat(o.Binary)
		if err != nil {
			return "", usageErrorf("--binary: %v", err)
		}
		if !st.Mode().IsRegular() {
			return "", usageErrorf("--binary %s: not a regular file", o.Binary)
		}
		return o.Binary, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this drove binary (give --binary): %w", err)
	}
	if r, err := filepath.EvalSymlinks(self); err == nil {
		self = r
	}
	return self, nil
}

// agentConfig is the agent.yaml to write, and the token: the base config
// (--config) with the flags over it, its paths pointing into the layout.
func (o *agentInstallOptions) agentConfig(l installLayout) ([]byte, string, error) {
	var c agentOptions
	if o.Config != "" {
		b, err := os.ReadFile(o.Config)
		if err != nil {
			return nil, "", usageErrorf("--config: %v", err)
		}
		if err := yaml.UnmarshalStrict(b, &c); err != nil {
			return nil, "", usageErrorf("--config %s: %v", o.Config, err)
		}
	}
	token, err := o.token(&c)
	if err != nil {
		return nil, "", err
	}
	if o.Join != nil {
		c.Join = o.Join
	}
	if o.Roles != nil {
		c.Roles = o.Roles
	}
	if o.Labels != nil {
		c.Labels = map[string]string{}
		for _, kv := range o.Labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, "", usageErrorf("--labels %q: want key=value", kv)
			}
			c.Labels[k] = v
		}
	}
	if o.Media != "" {
		m, err := filepath.Abs(o.Media)
		if err != nil {
			return nil, "", usageErrorf("--media %q: %v", o.Media, err)
		}
		c.Media = m
	}
	if len(c.Join) == 0 && !slices.Contains(c.Roles, "master") {
		return nil, "", usageErrorf("no --join: a node needs the address of a cluster member (only a master may start a cluster alone)")
	}
	c.Token, c.TokenFile = "", l.Token
	switch {
	case c.DataDir == "":
		c.DataDir = l.DataDir
	case !l.system():
		c.DataDir = filepath.Join(l.Root, c.DataDir)
	}
	b, err := yaml.Marshal(&c)
	if err != nil {
		return nil, "", fmt.Errorf("encode agent.yaml: %w", err)
	}
	head := "# Written by drove agent install; drove agent --config reads it.\n"
	return append([]byte(head), b...), token, nil
}

// token picks the cluster token: --token, --token-file, then the base
// config's token or tokenFile.
func (o *agentInstallOptions) token(c *agentOptions) (string, error) {
	var raw, from string
	switch {
	case o.Token != "":
		raw, from = o.Token, "--token"
	case o.TokenFile != "":
		b, err := os.ReadFile(o.TokenFile)
		if err != nil {
			return "", usageErrorf("--token-file: %v", err)
		}
		raw, from = string(b), "--token-file "+o.TokenFile
	case c.Token != "":
		raw, from = c.Token, "token in "+o.Config
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", usageErrorf("tokenFile in %s: %v", o.Config, err)
		}
		raw, from = string(b), "tokenFile "+c.TokenFile+" in "+o.Config
	default:
		return "", usageErrorf("no cluster token: give --token-file FILE (or --token)")
	}
	t, err := clusterauth.CheckToken(raw)
	if err != nil {
		return "", usageErrorf("%s: %v", from, err)
	}
	return t, nil
}

// errAgentExited: the agent started directly died within the settle time.
var errAgentExited = errors.New("the agent exited right after it started")
