package cli

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/coordinator/runtime"
	"github.com/drove-project/drove/layers/clusterfile"
	"github.com/drove-project/drove/layers/render"
	"github.com/drove-project/drove/protocol"
)

func newCertCmd(g *Globals) *cobra.Command {
	o := &upgradeOptions{}
	cmd := &cobra.Command{
		Use:   "cert --alt-names NAME[,NAME...] [flags]",
		Short: "Add names to the API server certificate on every master",
		Long: `cert adds subject alternative names (DNS names or IP addresses) to the
Kubernetes API server certificate of the applied cluster (kubernetes runtime).
One master at a time, the old apiserver.crt and .key are moved aside (kept
as .drove-old), kubeadm init phase certs apiserver issues a new pair from the
cluster's kubeadm configuration with the names added, and the API server is
restarted (its static pod manifest moved out and back); the next master
starts once it answers again. The configuration is uploaded to the cluster
(kubeadm-config) so that masters joined later get the names too.

The names are kept in the applied revision as the CertSANs env, which later
joins and upgrades keep. drove apply -f replaces the cluster env with the
file's: add CertSANs there too.`,
		Example: "  drove cert --alt-names api.example.com,10.0.0.100",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(o.AltNames) == 0 {
				return usageErrorf("name what to add with --alt-names NAME[,NAME...] (DNS names or IP addresses)")
			}
			for _, n := range o.AltNames {
				if !validAltName(n) {
					return usageErrorf("--alt-names %q is neither an IP address nor a DNS name", n)
				}
			}
			if err := o.complete(cmd.Flags()); err != nil {
				return err
			}
			return runCert(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringSliceVar(&o.AltNames, "alt-names", nil, "DNS names and IP addresses to add (comma list, repeatable)")
	o.addPlanFlags(cmd.Flags())
	return cmd
}

// dnsName is a DNS name, possibly a wildcard one (*.example.com).
var dnsName = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

// validAltName: an IP address or a DNS name a certificate can carry.
func validAltName(s string) bool {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Zone() == ""
	}
	return len(s) <= 253 && dnsName.MatchString(s)
}

func runCert(ctx context.Context, g *Globals, o *upgradeOptions) error {
	a, err := o.applied(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.close()
	if a.Runtime != clusterfile.RuntimeKubernetes {
		return fmt.Errorf("drove cert: %w: it renews kubeadm's API server certificate, and the cluster runs %s (set CertSANs in the Clusterfile's env for its own certificates)",
			runtime.ErrUnsupported, a.Runtime)
	}
	cur, err := buildDesired(ctx, a.File, a.Img)
	if err != nil {
		return fmt.Errorf("the applied revision: %w", err)
	}
	sans := slices.Clone(cur.CertSANs)
	var added []string
	for _, n := range o.AltNames {
		if !slices.Contains(sans, n) {
			sans = append(sans, n)
			added = append(added, n)
		}
	}
	if len(added) == 0 {
		fmt.Fprintf(g.Out, "the API server certificate names %s already (CertSANs of revision %d): nothing to do\n", strings.Join(o.AltNames, ", "), a.Rev.Serial)
		return nil
	}
	f := withCertSANs(a.File, sans)
	d, err := buildDesired(ctx, f, a.Img)
	if err != nil {
		return err
	}
	spec, err := runtime.APIServerCerts(d)
	if err != nil {
		return fmt.Errorf("plan the certificate renewal: %w", err)
	}
	p := runPlan{ID: planIDs(), Spec: spec, Hosts: d.Hosts}
	if o.DryRun {
		return printDryRun(g, dryRunView([]runPlan{p}), o.Output)
	}
	text, err := canonical(f)
	if err != nil {
		return err
	}
	rev := &protocol.ClusterRevision{Clusterfile: string(text), Image: a.Rev.Image, ImageDigest: a.Rev.ImageDigest, Runtime: a.Runtime,
		PreviousImage: a.Rev.PreviousImage, PreviousImageDigest: a.Rev.PreviousImageDigest}
	if err := o.submit(ctx, g, a, p, rev, a.File.Cluster.Masters()); err != nil {
		return err
	}
	fmt.Fprintf(g.Out, "the API server certificate on %s names %s too\n", plural(len(a.File.Cluster.Masters()), "master"), strings.Join(added, ", "))
	fmt.Fprintf(g.Err, "keep %s=%s in your Clusterfile's env: drove apply -f replaces the cluster env with the file's\n", render.KeyCertSANs, strings.Join(sans, ";"))
	return nil
}

// withCertSANs is f with spec.env's CertSANs set to sans (f itself is
// left as it is).
func withCertSANs(f *clusterfile.File, sans []string) *clusterfile.File {
	out := *f
	c := *f.Cluster
	c.Env = slices.DeleteFunc(slices.Clone(c.Env), func(e string) bool {
		return strings.HasPrefix(e, render.KeyCertSANs+"=")
	})
	c.Env = append(c.Env, render.KeyCertSANs+"="+strings.Join(sans, ";"))
	out.Cluster = &c
	return &out
}
