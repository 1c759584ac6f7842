package main

import (
	"fmt"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/stages"
)

func runStageCmd() *cobra.Command {
	var dirs []string
	var strict bool
	cmd := &cobra.Command{
		Use:   "run-stage <stage>",
		Short: "Run one cloud-config stage (<stage>.before, <stage>, <stage>.after)",
		Long: `Run the steps of a stage from every cloud-config, in order: image defaults
(/system/oem), then /run/initramfs/live, /etc/kairos, /usr/local/cloud-config,
/oem, the datasources' configs and the directories of the configs'
cloud-init-paths.
Any stage name runs: rootfs, initramfs, boot, fs, network, reconcile, the
install, upgrade and reset hooks, or your own
(provider-kairos.bootstrap.after.k3s-ready). A failing step is reported and
the others still run; the command then succeeds, as upstream, unless
--strict or a config's strict: true makes a failed step fail it.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := loadConfig().Config()
			all := append(append([]string{}, dirs...), c.CloudInitPaths...)
			sources, errs := stages.Load(host.System.Root, all)
			for _, err := range errs {
				logrus.Errorf("cloud-config skipped: %v", err)
			}
			r := stages.Runner{Root: host.System.Root}
			if r.Root == "/" {
				r.OnNode(os.Stdout)
			}
			err := r.RunStage(cmd.Context(), sources, args[0])
			if err == nil && len(errs) > 0 {
				err = fmt.Errorf("%d config file(s) skipped", len(errs))
			}
			if err != nil && !strict && !c.Strict {
				logrus.Warnf("%v (not failing: not strict)", err)
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringSliceVar(&dirs, "dir", stages.DefaultDirs, "cloud-config directories, in order")
	cmd.Flags().BoolVar(&strict, "strict", false, "fail when a step fails")
	return cmd
}
