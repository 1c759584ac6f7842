package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
)

func stateCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state [get <key>]",
		Short: "Show how this node booted and what it runs",
		Long: `Without arguments prints the node's state as YAML, in upstream's keys;
'state get <key>' prints one value (a dotted path: boot, kairos.version,
persistent.mount_point; a mapping prints as YAML).

  uuid             the machine's UUID (firmware, else the machine id)
  boot             active_boot, passive_boot, recovery_boot, livecd_boot
  upgrade_failure  true when an upgraded image failed to boot and grub
                   fell back to passive
  kairos           version, flavor, flavor_release, variant, init
                   (systemd, openrc), secureboot
  persistent, oem, state, recovery, efi
                   found, name (the device), label, filesystemlabel,
                   mount_point, mounted, read_only, type, size_bytes, uuid`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			values, err := state.Collect(host.System)
			if err != nil {
				return err
			}
			if len(args) > 0 && (len(args) != 2 || args[0] != "get") {
				return fmt.Errorf("usage: kairos-agent state [get <key>]")
			}
			var out any = values
			if len(args) == 2 {
				if out, err = state.Get(values, args[1]); err != nil {
					return err
				}
				if _, isMap := out.(map[string]any); !isMap {
					fmt.Fprintln(cmd.OutOrStdout(), out)
					return nil
				}
			}
			data, err := yaml.Marshal(out)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	return cmd
}
