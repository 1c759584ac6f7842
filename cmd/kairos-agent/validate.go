package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func validateCmd() *cobra.Command {
	var strict bool
	cmd := &cobra.Command{
		Use:   "validate <file>...",
		Short: "Check cloud-config and stage files exactly as the node reads them",
		Long: `Check cloud-config and stage files with the reader boot uses: YAML syntax,
and the type and value of every key the node reads (users, install, reset,
upgrade, k3s, p2p, bundles, stages and their steps, cloud-init's write_files,
runcmd...). Each finding is printed as file:line:column.

Errors (a wrong type or value) make boot skip the whole file, so the exit
status is 1 when there is any. Keys nothing reads are warnings (exit 0):
bundles and providers add keys of their own; --strict makes them errors.
A file without a #cloud-config header is a stage file: only its name and
stages run.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			n := 0
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				diags := cloudconfig.Validate(f, data)
				for _, d := range diags {
					fmt.Fprintln(cmd.OutOrStdout(), d)
				}
				n += diags.Errors(strict)
			}
			if n > 0 {
				return fmt.Errorf("%d problem(s) found", n)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&strict, "strict", false, "warnings (keys nothing reads) are errors too")
	return cmd
}
