package main

import (
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/stages"
)

func runStageCmd() *cobra.Command {
	var dirs []string
	cmd := &cobra.Command{
		Use:   "run-stage <stage>",
		Short: "Run one cloud-config stage (<stage>.before, <stage>, <stage>.after)",
		Long: `Run the steps of a stage from every cloud-config, in order: image defaults
(/system/oem), then /oem, /usr/local/cloud-config and /run/initramfs/live.
Stages: rootfs, initramfs, boot, fs, network, reconcile, and the install,
upgrade and reset hooks. A failing step is reported and the others still run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sources, errs := stages.Load(host.System.Root, dirs)
			for _, err := range errs {
				logrus.Errorf("cloud-config skipped: %v", err)
			}
			return stages.Runner{Root: host.System.Root}.RunStage(cmd.Context(), sources, args[0])
		},
	}
	cmd.Flags().StringSliceVar(&dirs, "dir", stages.DefaultDirs, "cloud-config directories, in order")
	return cmd
}
