package main

import (
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/mount"
	"github.com/kairos-io/kairos/internal/version"
)

func mountCmd() *cobra.Command {
	var sysroot string
	var loop bool
	cmd := &cobra.Command{
		Use:   "mount",
		Short: "Assemble the immutable root (run from the initramfs before switch-root)",
		Long: `Assemble the immutable root in the initramfs, from the kernel command line.
Installed systems (cos-img/filename=...) take two steps: --loop, before the
root is mounted, mounts COS_STATE (COS_RECOVERY for recovery) read-only and
attaches the boot image to a loop device, which the initramfs then mounts as
root; then, before switch-root, COS_OEM at /oem, tmpfs overlays on /etc /var
/srv, COS_PERSISTENT at /usr/local with the persistent bind paths, the
/run/cos/<mode>_mode sentinel and /etc/fstab. Live media only get the
live_mode sentinel.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := host.System
			cmdline, err := h.KernelCmdline()
			if err != nil {
				return err
			}
			logrus.Infof("kairos-agent mount: %s", version.Version)
			if loop {
				return mount.Fallback{
					Loop: mount.Loop, Arm: mount.ArmFallback, Log: os.Stderr,
					Reboot: func() error {
						_, err := h.Command("systemctl", "--no-block", "reboot")
						return err
					},
				}.LoopOrFallback(cmdline)
			}
			return mount.Run(mount.Options{Cmdline: cmdline, Sysroot: sysroot, RunDir: h.Run})
		},
	}
	cmd.Flags().StringVar(&sysroot, "sysroot", host.System.Sysroot, "where the new root is assembled")
	cmd.Flags().BoolVar(&loop, "loop", false, "first step of an installed boot: attach the boot image to a loop device")
	return cmd
}
