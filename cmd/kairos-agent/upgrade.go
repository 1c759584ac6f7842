package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"
	"golang.org/x/mod/semver"

	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/agent/node"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/release"
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
upgrade.source of the cloud-config. Registries: auth from the docker config
file; --allow-insecure-registries for plain HTTP. Refused on live media, for
a source without /etc/kairos-release or without /boot/vmlinuz and
/boot/initrd, for an image of another architecture (KAIROS_TARGETARCH), when
COS_STATE lacks the space (all checked before writing), and at once while
another install, upgrade or reset runs (` + deploy.LockFile + `). Stages
before-upgrade and after-upgrade run around it. An interruption before the
renames leaves the node as it was; boot assessment is armed before them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmdline, err := os.ReadFile("/proc/cmdline")
			if err != nil {
				return err
			}
			m := loadConfig()
			if o.Source == "" {
				if v, ok := m.Get("upgrade.source"); ok {
					o.Source = fmt.Sprint(v)
				}
			}
			if v, ok := m.Get("upgrade.recovery"); ok && fmt.Sprint(v) == "true" {
				o.Recovery = true
			}
			if v, ok := m.Get("upgrade.reboot"); ok && fmt.Sprint(v) == "true" {
				reboot = true
			}
			sources, _ := stages.Load("/", stages.DefaultDirs)
			n := newNode(string(cmdline), stages.Set{Sources: sources}, os.Stdout)
			n.Tmp = spoolDir()
			if err := n.Upgrade(cmd.Context(), o); err != nil {
				return err
			}
			if reboot {
				return exec.Command("reboot").Run()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Source, "source", "", "image to upgrade to: oci:<registry ref>, dir:<path>, file:<oci tar> (default upgrade.source)")
	cmd.Flags().BoolVar(&o.Recovery, "recovery", false, "upgrade the recovery image instead of active")
	cmd.Flags().BoolVar(&reboot, "reboot", false, "reboot when done")
	cmd.Flags().BoolVar(&o.AllowInsecure, "allow-insecure-registries", false, "pull over plain HTTP")
	cmd.AddCommand(listReleasesCmd(release.Path))
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
(--all: every version tag).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if repo == "" {
				return fmt.Errorf("--registry <repository> is required")
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
			current := ""
			if data, err := os.ReadFile(releasePath); err == nil {
				if rel, err := release.Parse(data); err == nil {
					current = rel["KAIROS_VERSION"]
				}
			}
			for _, t := range NewerReleases(tags, current, all) {
				fmt.Fprintln(cmd.OutOrStdout(), t)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repo, "registry", "", "repository to list (registry/name)")
	cmd.Flags().BoolVar(&insecure, "allow-insecure-registries", false, "list over plain HTTP")
	cmd.Flags().BoolVar(&all, "all", false, "every version tag, not only newer ones")
	return cmd
}

// NewerReleases are the semantic-version tags newer than current (all
// version tags when all is set or current is not a version), newest first.
func NewerReleases(tags []string, current string, all bool) []string {
	var out []string
	for _, t := range tags {
		if !semver.IsValid(t) {
			continue
		}
		if !all && semver.IsValid(current) && semver.Compare(t, current) <= 0 {
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return semver.Compare(out[i], out[j]) > 0 })
	return out
}

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

func runReset(cmd *cobra.Command, o node.ResetOptions, unattended, reboot bool) error {
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	m := loadConfig()
	if v, ok := m.Get("reset.reset-oem"); ok && fmt.Sprint(v) == "true" {
		o.ResetOEM = true
	}
	if v, ok := m.Get("reset.reset-persistent"); ok && fmt.Sprint(v) == "false" {
		o.KeepPersistent = true
	}
	if v, ok := m.Get("reset.reboot"); ok && fmt.Sprint(v) == "true" {
		reboot = true
	}
	if !unattended {
		fmt.Fprint(cmd.OutOrStdout(), "Reset: active and passive become the recovery image and persistent data is erased. Continue? (y/n) [n]: ")
		var answer string
		fmt.Fscanln(cmd.InOrStdin(), &answer)
		if !strings.HasPrefix(strings.ToLower(answer), "y") {
			return fmt.Errorf("reset cancelled: nothing was changed")
		}
	}
	sources, _ := stages.Load("/", stages.DefaultDirs)
	n := newNode(string(cmdline), stages.Set{Sources: sources}, consoles(os.Stdout))
	if err := n.Reset(cmd.Context(), o); err != nil {
		return err
	}
	if reboot {
		return exec.Command("reboot").Run()
	}
	return nil
}

func newNode(cmdline string, st stages.Set, out io.Writer) *node.Node {
	return &node.Node{
		Mode: state.DetectBootMode(cmdline), Device: node.ByLabel, Mounts: "/proc/self/mounts",
		WorkDir: "/run/kairos/node", Stages: st, Out: out,
	}
}

// spoolDir is where a pulled image's files are spooled: $TMPDIR, else the
// persistent partition (the root is read-only, /run is memory).
func spoolDir() string {
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	// /usr/local/.kairos stays readable (users check its deployed
	// sentinel); only the spool is private.
	d := "/usr/local/.kairos/tmp"
	if err := os.MkdirAll(filepath.Dir(d), 0o755); err != nil {
		return ""
	}
	if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
		return ""
	}
	// What an interrupted pull left.
	old, _ := filepath.Glob(filepath.Join(d, "kairos-spool-*"))
	for _, f := range old {
		os.Remove(f)
	}
	return d
}
