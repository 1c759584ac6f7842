package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/node"
	"github.com/kairos-io/kairos/internal/rootfs"
	"github.com/kairos-io/kairos/internal/stages"
)

func upgradeCmd() *cobra.Command {
	var o node.UpgradeOptions
	var reboot bool
	cmd := &cobra.Command{
		Use:   "upgrade [--source oci:<ref>|dir:<path>|file:<oci tar>] [--recovery] [--reboot]",
		Short: "Upgrade the node to another image (A/B, with fallback)",
		Long: `Write the image as COS_STATE's transition.img, then rotate: active.img
becomes passive.img (unless the node runs from passive), transition.img
becomes active.img; next_entry=cos and boot assessment are set, so a new
image that does not come up falls back to passive by itself. --recovery
does the same for COS_RECOVERY's recovery.img. The source defaults to
upgrade.source of the cloud-config, then (as upstream) to the newest
release of the running image's line in its own repository: the tags of
KAIROS_IMAGE_REPO named as KAIROS_IMAGE_LABEL is, with a newer version (none
newer: nothing to do). Registries: auth from the docker config
file; --allow-insecure-registries for plain HTTP. Refused on live media, for
a source without /etc/kairos-release or without /boot/vmlinuz and
/boot/initrd, for an image of another architecture (KAIROS_TARGETARCH), when
COS_STATE lacks the space (all checked before writing), and at once while
another install, upgrade or reset runs (` + host.System.LockFile + `). Stages
before-upgrade and after-upgrade run around it. An interruption before the
renames leaves the node as it was; boot assessment is armed before them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h := host.System
			cmdline, err := h.KernelCmdline()
			if err != nil {
				return err
			}
			m := loadConfig()
			o, reboot = node.UpgradeFromConfig(m, o, reboot)
			sources, _ := stages.Load(h.Root, stages.DefaultDirs)
			n := node.New(h, cmdline, stages.Set{Sources: sources}, os.Stdout)
			n.Tmp = node.SpoolDir(h)
			if err := n.Upgrade(cmd.Context(), o); err != nil {
				return err
			}
			if reboot {
				return tool("reboot")
			}
			if m.Config().Upgrade.Poweroff {
				return tool("poweroff")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Source, "source", "", "image to upgrade to: oci:<registry ref>, dir:<path>, file:<oci tar> (default upgrade.source)")
	cmd.Flags().BoolVar(&o.Recovery, "recovery", false, "upgrade the recovery image instead of active")
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	cmd.Flags().BoolVar(&o.AllowInsecure, "allow-insecure-registries", false, "pull over plain HTTP")
	cmd.Flags().StringVar(&o.VerifyKey, "verify-key", "", "cosign public key: refuse an image without a valid signature by it, before anything is written (default upgrade.verify_key)")
	cmd.AddCommand(listReleasesCmd(host.System.Release))
	return cmd
}

// listReleasesCmd compares against the KAIROS_VERSION of the release file
// at releasePath.
func listReleasesCmd(releasePath string) *cobra.Command {
	var repo string
	var insecure, all bool
	cmd := &cobra.Command{
		Use:   "list-releases --registry <repository>",
		Short: "List the repository's release tags newer than the running version",
		Long: `List the tags of a repository (e.g. quay.io/kairos/debian) that are semantic
versions newer than KAIROS_VERSION of /etc/kairos-release, newest first
(--all: every version tag). The repository defaults to the image's own
(KAIROS_IMAGE_REPO).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" {
				rel, _ := node.RunningRelease(releasePath)
				repo = rel["KAIROS_IMAGE_REPO"]
			}
			if repo == "" {
				return fmt.Errorf("--registry <repository> is required (this image names none: KAIROS_IMAGE_REPO)")
			}
			// The pull policy of upgrade itself (HTTPS only unless
			// --allow-insecure-registries), so that listing never
			// trusts a registry the upgrade would refuse.
			r, err := name.NewRepository(repo, rootfs.NameOptions(insecure)...)
			if err != nil {
				return err
			}
			tags, err := remote.List(r, rootfs.RemoteOptions(cmd.Context(), insecure)...)
			if err != nil {
				return fmt.Errorf("listing %s: %w", repo, err)
			}
			for _, t := range node.NewerReleases(tags, node.RunningVersion(releasePath), all) {
				fmt.Fprintln(cmd.OutOrStdout(), t)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "registry", "", "repository to list (registry/name; default KAIROS_IMAGE_REPO)")
	cmd.Flags().BoolVar(&insecure, "allow-insecure-registries", false, "list over plain HTTP")
	cmd.Flags().BoolVar(&all, "all", false, "every version tag, not only newer ones")
	return cmd
}
