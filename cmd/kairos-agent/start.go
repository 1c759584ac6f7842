package main

import (
	"context"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/bundle"
	"github.com/kairos-io/kairos/internal/agent/firstboot"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/install"
	"github.com/kairos-io/kairos/internal/agent/node"
	"github.com/kairos-io/kairos/internal/agent/service"
	"github.com/kairos-io/kairos/internal/agent/start"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/stages"
)

func startCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "start",
		Short: "Bootstrap the node (kairos-agent.service)",
		Long: `On an installed node, the first boot: with k3s.enabled (or k3s-agent.enabled)
installs the config's bundles (install.bundles, then bundles; see
'install-bundle --help'), writes /etc/sysconfig/k3s (K3S_ARGS from k3s.args, and k3s.env) and enables
and starts the service, then creates ` + host.System.Deployed + `; it does nothing
while that file exists. On an active boot it first clears the boot
assessment an upgrade armed (the new image came up). On live media booted
with install-mode and a cloud-config saying install.auto: true, installs
(see 'install --help'). In recovery booted with kairos.reset (the grub
"state reset" entry), resets unattended and reboots.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := host.System
			cmdline, err := h.KernelCmdline()
			if err != nil {
				return err
			}
			m := loadConfig()
			plan := start.Decide(state.DetectBootMode(cmdline), cmdline, install.Auto(m))
			return start.Node{
				Out: os.Stdout,
				Install: func(ctx context.Context) error {
					cfg, err := install.UserConfig(m)
					if err != nil {
						return err
					}
					return runInstall(ctx, m, nil, cfg, installFlags{device: start.AutoDevice(m), consoles: true})
				},
				// The grub "state reset" entry: unattended, then reboot.
				Reset: func(context.Context) error { return runReset(cmd, node.ResetOptions{}, true, true) },
				ConfirmBoot: func() error {
					return node.New(h, cmdline, stages.Set{}, os.Stdout).ConfirmBoot()
				},
				Deploy: func() error {
					enable := func(unit string) error { return service.Enable(h, unit) }
					// Unpacked on COS_PERSISTENT (the spool upgrades use): /tmp may be the
					// read-only root's at first boot.
					bundles := bundle.Installer{Out: os.Stdout, Tmp: node.SpoolDir(h)}
					return firstboot.Node{Host: h, Enable: enable, Bundle: bundles.Install, Log: os.Stdout}.Start(cmd.Context(), m)
				},
				Warn: logrus.Errorf,
			}.Run(cmd.Context(), plan)
		},
	}
}
