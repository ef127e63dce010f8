package cli

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestFlagUsageHasNoBackquotes: pflag takes the first backquoted word of a
// usage as the value's name, so "`drove lab up`" in --server's usage
// printed "--server drove lab up" in every client command's help.
func TestFlagUsageHasNoBackquotes(t *testing.T) {
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		check := func(f *pflag.Flag) {
			if strings.Contains(f.Usage, "`") {
				t.Errorf("%s --%s: usage has a backquote (pflag shows it as the value's name): %s", c.CommandPath(), f.Name, f.Usage)
			}
		}
		c.LocalFlags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	root := NewRootCmd(&Globals{})
	if len(root.Commands()) == 0 {
		t.Fatal("the root command has no subcommands")
	}
	visit(root)
}
