package cli

import (
	"github.com/spf13/cobra"
)

func newApplyCmd(g *Globals) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "apply -f Clusterfile [flags]",
		Short: "Bring a cluster to what a Clusterfile describes",
		Long: `apply installs the cluster a Clusterfile describes (sealer's v1 and v2
Cluster, Config, Plugin, Application and kubeadm documents), or, when one is
already applied, changes it to match: hosts no longer listed are cleaned out,
new hosts joined, and changed env, Configs or plugins rendered again on the
hosts that stay. Applying the same Clusterfile again does nothing.

The flags of drove run (--masters, --nodes, -e, --cmds, --apps, SSH access)
override the file's fields. The image is spec.image; changing it is an
upgrade (drove upgrade).`,
		Example: `  drove apply -f Clusterfile
  drove apply -f Clusterfile -e PodCIDR=10.64.0.0/16 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Clusterfile == "" {
				return usageErrorf("give the Clusterfile with -f FILE")
			}
			if err := o.complete(cmd.Flags()); err != nil {
				return err
			}
			return runRun(cmd.Context(), g, o)
		},
	}
	cmd.Flags().StringVarP(&o.Clusterfile, "clusterfile", "f", "", "the Clusterfile (required)")
	o.addFlags(cmd.Flags(), false)
	return cmd
}
