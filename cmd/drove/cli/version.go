package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/drove-project/drove/internal/version"
)

func newVersionCmd(g *Globals) *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print drove's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if short {
				fmt.Fprintln(g.Out, version.String())
				return nil
			}
			fmt.Fprintf(g.Out, "drove %s %s/%s %s\n", version.String(), runtime.GOOS, runtime.GOARCH, runtime.Version())
			return nil
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "print only the version")
	return cmd
}
