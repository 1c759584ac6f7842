// Command kairos-agent runs on every Kairos node: boot-time mounting in the
// initramfs, and (as the later commands land) install, upgrade and reset.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/agent/mount"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/internal/stages"
	"github.com/kairos-io/kairos/internal/version"
)

func main() {
	root := &cobra.Command{
		Use:           "kairos-agent",
		Short:         "The Kairos node agent",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(versionCmd(), mountCmd(), stateCmd(), runStageCmd(), validateCmd(), configCmd(),
		installCmd(), manualInstallCmd(), interactiveInstallCmd(), startCmd(), datasourceCmd(), upgradeCmd(), resetCmd())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kairos-agent: error:", err)
		os.Exit(1)
	}
}

func configCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "config [get <key>]",
		Short: "Print the node's merged cloud-config",
		Long: `Print the cloud-config the node runs with: every file with a cloud-config
header in ` + strings.Join(cloudconfig.SourceDirs, ", ") + ` (in this order,
later wins; mappings merge, stage steps add up). 'config get k3s.enabled'
prints one value. Files that cannot be read are reported and left out.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := cloudconfig.Load("/")
			for _, err := range m.Skipped {
				logrus.Warnf("cloud-config skipped: %v", err)
			}
			var v any = m.Values
			if len(args) == 2 && args[0] == "get" {
				var ok bool
				if v, ok = m.Get(args[1]); !ok {
					return fmt.Errorf("%s is not set", args[1])
				}
			} else if len(args) > 0 {
				return fmt.Errorf("usage: kairos-agent config [get <key>]")
			}
			if sv, ok := v.(string); ok {
				fmt.Fprintln(cmd.OutOrStdout(), sv)
				return nil
			}
			out, err := yaml.Marshal(v)
			if err != nil {
				return err
			}
			if len(args) == 0 {
				fmt.Fprint(cmd.OutOrStdout(), "#cloud-config\n")
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
}

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

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the agent version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	}
}

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
			cmdline, err := os.ReadFile("/proc/cmdline")
			if err != nil {
				return err
			}
			logrus.Infof("kairos-agent mount: %s", version.Version)
			if loop {
				err := mount.Loop(string(cmdline), os.Stderr)
				if err == nil {
					return nil
				}
				// The image cannot boot: say why on the console, and boot
				// the next entry of the fallback order instead of waiting.
				b, _ := mount.ParseBootImage(string(cmdline))
				entry := mount.FallbackEntry(b.Mode)
				if entry == "" {
					return err
				}
				fmt.Fprintf(os.Stderr, "kairos: %v: rebooting into the %q entry\n", err, entry)
				if aerr := mount.ArmFallback(b, entry, os.Stderr); aerr != nil {
					fmt.Fprintf(os.Stderr, "kairos: cannot set the fallback entry: %v\n", aerr)
					return err
				}
				if rerr := exec.Command("systemctl", "--no-block", "reboot").Run(); rerr != nil {
					fmt.Fprintf(os.Stderr, "kairos: reboot: %v\n", rerr)
				}
				return err
			}
			return mount.Run(mount.Options{Cmdline: string(cmdline), Sysroot: sysroot, RunDir: "/run"})
		},
	}
	cmd.Flags().StringVar(&sysroot, "sysroot", "/sysroot", "where the new root is assembled")
	cmd.Flags().BoolVar(&loop, "loop", false, "first step of an installed boot: attach the boot image to a loop device")
	return cmd
}

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
			sources, errs := stages.Load("/", dirs)
			for _, err := range errs {
				logrus.Errorf("cloud-config skipped: %v", err)
			}
			return stages.Runner{Root: "/"}.RunStage(cmd.Context(), sources, args[0])
		},
	}
	cmd.Flags().StringSliceVar(&dirs, "dir", stages.DefaultDirs, "cloud-config directories, in order")
	return cmd
}

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
			values, err := currentState()
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
			keys := []string{"boot", "upgrade_failure", "kairos.version", "kairos.flavor", "kairos.flavor_release", "kairos.variant"}
			for _, p := range state.Partitions {
				if _, ok := values[p.Name+".device"]; ok {
					keys = append(keys, p.Name+".device", p.Name+".mountpoint")
				}
			}
			for _, k := range keys {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", k, values[k])
			}
			return nil
		},
	}
	return cmd
}

func currentState() (map[string]string, error) {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	values := state.PartitionValues("/dev/disk/by-label", "/proc/self/mounts")
	values["boot"] = string(state.DetectBootMode(string(cmdline)))
	values["upgrade_failure"] = fmt.Sprint(state.UpgradeFailed(string(cmdline)))
	if data, err := os.ReadFile(release.Path); err == nil {
		rel, err := release.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", release.Path, err)
		}
		values["kairos.version"] = rel["KAIROS_VERSION"]
		values["kairos.flavor"] = rel["KAIROS_FLAVOR"]
		values["kairos.flavor_release"] = rel["KAIROS_FLAVOR_RELEASE"]
		values["kairos.variant"] = rel["KAIROS_VARIANT"]
	}
	return values, nil
}
