package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/node"
	"github.com/kairos-io/kairos/internal/stages"
)

func resetCmd() *cobra.Command {
	var o node.ResetOptions
	var unattended, reboot bool
	cmd := &cobra.Command{
		Use:   "reset [--reset-oem] [--unattended] [--reboot]",
		Short: "From recovery: redeploy active and passive from the recovery image, wipe persistent data",
		Long: `Run from the recovery boot: active.img and passive.img are rebuilt from the
recovery image, COS_PERSISTENT (/usr/local and the persistent paths: /home,
/etc/ssh, ...) is formatted, COS_OEM too with --reset-oem (otherwise the
user's cloud-configs stay). Without --unattended it asks first. The grub
"state reset" entry boots recovery with kairos.reset, which runs it
unattended and reboots. reset.reset-oem, reset.reset-persistent and
reset.reboot of the cloud-config apply too. Stages before-reset and
after-reset run around it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runReset(cmd, o, unattended, reboot)
		},
	}
	cmd.Flags().BoolVar(&o.ResetOEM, "reset-oem", false, "format COS_OEM too (the user's cloud-configs go)")
	cmd.Flags().BoolVar(&unattended, "unattended", false, "do not ask")
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	return cmd
}

// runReset resets after asking, unless unattended (the "state reset"
// entry runs it from start).
func runReset(cmd *cobra.Command, o node.ResetOptions, unattended, reboot bool) error {
	h := host.System
	cmdline, err := h.KernelCmdline()
	if err != nil {
		return err
	}
	m := loadConfig()
	o, reboot = node.ResetFromConfig(m, o, reboot)
	if !unattended {
		fmt.Fprint(cmd.OutOrStdout(), "Reset: active and passive become the recovery image and persistent data is erased. Continue? (y/n) [n]: ")
		var answer string
		fmt.Fscanln(cmd.InOrStdin(), &answer)
		if !strings.HasPrefix(strings.ToLower(answer), "y") {
			return fmt.Errorf("reset cancelled: nothing was changed")
		}
	}
	sources, _ := stages.Load(h.Root, stages.DefaultDirs)
	n := node.New(h, cmdline, stages.Set{Sources: sources}, consoles(os.Stdout))
	if err := n.Reset(cmd.Context(), o); err != nil {
		return err
	}
	if reboot {
		return tool("reboot")
	}
	if m.Config().Reset.Poweroff {
		return tool("poweroff")
	}
	return nil
}
