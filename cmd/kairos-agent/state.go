package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
)

func stateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state [get <key>]",
		Short: "Show how this node booted and what it runs",
		Long: `Without arguments prints every value; 'state get <key>' prints one.
Keys: boot (active_boot, passive_boot, recovery_boot, livecd_boot),
upgrade_failure (true when an upgraded image failed to boot and grub fell
back to passive),
kairos.version, kairos.flavor, kairos.flavor_release, kairos.variant, and for
each partition of the installed layout that is present (efi, oem, recovery,
state, persistent): <name>.device and <name>.mountpoint.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			values, err := state.Collect(host.System)
			if err != nil {
				return err
			}
			if len(args) == 2 && args[0] == "get" {
				v, ok := values[args[1]]
				if !ok {
					return fmt.Errorf("unknown state key %q", args[1])
				}
				fmt.Fprintln(cmd.OutOrStdout(), v)
				return nil
			}
			if len(args) > 0 {
				return fmt.Errorf("usage: kairos-agent state [get <key>]")
			}
			for _, k := range state.ReportKeys(values) {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", k, values[k])
			}
			return nil
		},
	}
	return cmd
}
