package cmd

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasAnExample walks the command tree: every command's
// --help shows an example, and shell completion is there.
func TestEveryCommandHasAnExample(t *testing.T) {
	root := newRootCmd(&app{})
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		// cobra's own completion commands explain their use in Long instead.
		if c.Name() == "help" || (c.Parent() != nil && c.Parent().Name() == "completion") || c.Name() == "completion" {
			return
		}
		if c.Example == "" {
			t.Errorf("pms %s --help has no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if c, _, err := root.Find([]string{"completion", "bash"}); err != nil || c.Name() != "bash" {
		t.Errorf("pms completion bash: %v", err)
	}
}
