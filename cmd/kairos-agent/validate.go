package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func validateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate <file>...",
		Short: "Check cloud-config files against the Kairos keys",
		Long: `Check cloud-config files: the #cloud-config header, YAML syntax, and every
key and value shape (users, install, upgrade, reset, k3s, k3s-agent, p2p,
stages...). Each problem is printed as file:line:column; the exit status is 1
when there is any. Boot itself never fails on unknown keys: they are ignored.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			n := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				for _, p := range cloudconfig.Validate(f, data) {
					fmt.Fprintln(cmd.OutOrStdout(), p)
					n++
				}
			}
			if n > 0 {
				return fmt.Errorf("%d problem(s) found", n)
			}
			return nil
		},
	}
}
