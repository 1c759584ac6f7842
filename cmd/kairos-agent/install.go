package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/install"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/stages"
)

// installFlags override the cloud-config's install section.
type installFlags struct {
	device, source   string
	reboot, poweroff bool
	allowInsecure    bool
	// consoles also prints progress on every system console (unattended
	// installs run by a service).
	consoles bool
}

func (f *installFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.device, "device", "", "disk to install to (/dev/vda, or auto: the first disk big enough that is not the boot medium); default install.device")
	cmd.Flags().StringVar(&f.source, "source", "", "image to install: oci:<registry ref>, dir:<path>, file:<oci tar>; default install.source, else the running live system")
	cmd.Flags().BoolVar(&f.reboot, "reboot", false, "reboot when done (install.reboot)")
	cmd.Flags().BoolVar(&f.poweroff, "poweroff", false, "power off when done (install.poweroff)")
	cmd.Flags().BoolVar(&f.allowInsecure, "allow-insecure-registries", false, "pull oci: sources over plain HTTP")
}

const installHelp = `The disk gets the contract's GPT layout: COS_GRUB (UEFI loader), a
bios_grub partition (BIOS), COS_OEM, COS_RECOVERY, COS_STATE and
COS_PERSISTENT taking the rest (sizes from the image, or install.partitions).
active.img is written from the live system (or --source), then copied to
passive.img and the recovery image; grub's menu and environments go to
COS_STATE, the cloud-config to /oem/90_custom.yaml. Stages before-install,
after-install-chroot (inside the new image) and after-install run around it.
A disk that is too small, in use or the boot medium is refused before
anything is written. Progress is printed; on failure the log is left in
/oem/install.log when COS_OEM was made, and the command fails.`

func installCmd() *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install to disk with the node's cloud-config (install.auto on live media)",
		Long:  "Install Kairos to a disk as the merged cloud-config says (see 'kairos-agent config').\n\n" + installHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m := loadConfig()
			cfg, err := install.UserConfig(m)
			if err != nil {
				return err
			}
			return runInstall(cmd.Context(), m, nil, cfg, f)
		},
	}
	f.register(cmd)
	return cmd
}

func manualInstallCmd() *cobra.Command {
	var f installFlags
	cmd := &cobra.Command{
		Use:   "manual-install <config> --device <disk>",
		Short: "Install to disk with the given cloud-config",
		Long:  "Install Kairos to a disk with <config> (merged over the node's own\nconfig; the file itself becomes /oem/90_custom.yaml).\n\n" + installHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			diags := cloudconfig.Validate(args[0], data)
			for _, d := range diags {
				fmt.Fprintln(os.Stderr, d)
			}
			if n := diags.Errors(false); n > 0 {
				return fmt.Errorf("%s: %d error(s): nothing was written", args[0], n)
			}
			return installWithFile(cmd.Context(), args[0], data, f)
		},
	}
	f.register(cmd)
	return cmd
}

func interactiveInstallCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "interactive-install",
		Short: "Ask for the disk, a user, a password and k3s on the console, then install",
		Long: `Ask on the console (screen or serial) for the disk, a user (in the admin
group: sudo), its password and SSH key, and whether to enable k3s; confirm,
then install as manual-install does with the config the answers make. The
live ISO's "interactive install" entry starts it on tty1; over a serial line
log in and run it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			disks, err := blockdev.Of(host.System).Disks()
			if err != nil {
				return err
			}
			var free []blockdev.Disk
			for _, d := range disks {
				if used, _ := blockdev.Of(host.System).InUse(d); used == "" {
					free = append(free, d)
				}
			}
			a, err := install.Ask(os.Stdin, os.Stdout, os.Stdin, free)
			if err != nil {
				return err
			}
			data, err := a.Config()
			if err != nil {
				return err
			}
			return installWithFile(cmd.Context(), "interactive answers", data, installFlags{})
		},
	}
	return cmd
}

// installWithFile installs with a config file merged over the node's.
func installWithFile(ctx context.Context, name string, data []byte, f installFlags) error {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m := loadConfig()
	cloudconfig.Merge(m.Values, doc)
	cloudconfig.Merge(m.Raw, doc)
	src, err := stages.ParseSource(name, data)
	if err != nil {
		return err
	}
	return runInstall(ctx, m, &src, data, f)
}

func runInstall(ctx context.Context, m cloudconfig.Merged, extra *stages.Source, userCfg []byte, f installFlags) error {
	out := io.Writer(os.Stdout)
	if f.consoles {
		out = consoles(out)
	}
	o, err := install.FromConfig(m)
	if err != nil {
		return err
	}
	o.Config = userCfg
	o, err = install.Overrides{Device: f.device, Source: f.source, Reboot: f.reboot, Poweroff: f.poweroff, AllowInsecure: f.allowInsecure}.Apply(o)
	if err != nil {
		return err
	}
	h := host.System
	sources, errs := stages.Load(h.Root, stages.DefaultDirs)
	for _, err := range errs {
		logrus.Warnf("cloud-config skipped: %v", err)
	}
	if extra != nil {
		sources = append(sources, *extra)
	}
	in := &install.Installer{
		Devices: blockdev.Of(host.System), Out: out,
		Stages:   stages.Set{Sources: sources},
		LiveRoot: h.LiveRoot, WorkDir: h.InstallWork, Tmp: h.Getenv("TMPDIR"),
	}
	plan, err := in.Plan(ctx, o)
	if err != nil {
		err = fmt.Errorf("nothing was written: %w", err)
		fmt.Fprintf(out, "kairos-agent install: %v\n", err)
		return err
	}
	defer plan.Close()
	if err := in.Run(ctx, plan); err != nil {
		err = fmt.Errorf("install to %s failed: %w", plan.Disk.Path, err)
		fmt.Fprintf(out, "kairos-agent install: %v\n", err)
		return err
	}
	switch {
	case o.Poweroff:
		return tool("poweroff")
	case o.Reboot:
		return tool("reboot")
	}
	return nil
}
