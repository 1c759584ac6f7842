// Package node is what the agent does to an installed node's images:
// upgrade, reset from recovery, and confirming a boot.
//
// An upgrade writes the new system image next to the running one
// (transition.img), then swaps it in by renames, so that
// an interruption at any point leaves a disk that boots: before the
// renames the old images are untouched; between them grub falls back to
// passive, which is then the old active (the initramfs names loop devices
// by image file, see overlay/initrd's udev rule, not by the label inside).
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/artifacts/source"
	"github.com/kairos-io/kairos/internal/artifacts/squashfs"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/grubenv"
	"github.com/kairos-io/kairos/internal/release"
)

// Stages of the contract around an upgrade.
const (
	StageBefore = "before-upgrade"
	StageAfter  = "after-upgrade"
)

// UpgradeOptions are what the user asked for.
type UpgradeOptions struct {
	// Source: oci:<ref>, dir:<path>, file:<oci tar>.
	Source string
	// Recovery upgrades the recovery image instead of active.
	Recovery      bool
	AllowInsecure bool
}

// Node is the installed system being upgraded.
type Node struct {
	Mode state.BootMode
	// Device finds a partition by file system label.
	Device func(label string) (string, error)
	// Mounts is /proc/self/mounts.
	Mounts string
	// WorkDir is where partitions that are not mounted get mounted.
	WorkDir string
	Tmp     string
	Stages  deploy.Stages
	Out     io.Writer

	verb string // the command, in progress lines
}

// ByLabel finds partitions through udev's /dev/disk/by-label.
func ByLabel(label string) (string, error) {
	dev, err := filepath.EvalSymlinks(filepath.Join("/dev/disk/by-label", label))
	if err != nil {
		return "", fmt.Errorf("no partition labelled %s: %w", label, err)
	}
	return dev, nil
}

func (n *Node) say(format string, args ...any) {
	if n.Out != nil {
		fmt.Fprintf(n.Out, "kairos-agent "+n.verb+": "+format+"\n", args...)
	}
}

// Upgrade writes the source as the new active (or recovery) image.
func (n *Node) Upgrade(ctx context.Context, o UpgradeOptions) (err error) {
	start := time.Now()
	n.verb = "upgrade"
	switch n.Mode {
	case state.LiveCDBoot:
		return fmt.Errorf("booted from live media: upgrades run on installed nodes (install first)")
	case state.UnknownBoot:
		return fmt.Errorf("not booted from a Kairos installed disk (no cos-img/filename on the kernel command line)")
	}
	if o.Source == "" {
		return fmt.Errorf("no source: give --source %s or set upgrade.source", strings.Join(source.AgentKinds, "|"))
	}
	ref, err := source.FromAgent(o.Source)
	if err != nil {
		return err
	}
	n.say("source %s", o.Source)
	tree, err := source.OpenWith(ctx, ref, source.Options{Tmp: n.Tmp, Insecure: o.AllowInsecure})
	if err != nil {
		return fmt.Errorf("nothing was changed: %w", err)
	}
	defer tree.Close()
	relData, err := squashfs.ReadFile(tree.Root, release.Path)
	if err != nil {
		return fmt.Errorf("nothing was changed: %s has no %s: it is not a Kairos image", o.Source, release.Path)
	}
	rel, err := release.Parse(relData)
	if err != nil {
		return fmt.Errorf("nothing was changed: %s: %s: %w", o.Source, release.Path, err)
	}
	imgSize, err := imageSize(tree.Root)
	if err != nil {
		return fmt.Errorf("sizing the image: %w", err)
	}

	target, img := disklayout.LabelState, disklayout.Active
	if o.Recovery {
		target, img = disklayout.LabelRecovery, disklayout.Recovery
	}
	mounts := &deploy.Mounts{}
	defer func() {
		if uerr := mounts.UnmountAll(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	dir, err := n.writable(mounts, target)
	if err != nil {
		return err
	}
	imgDir := filepath.Join(dir, disklayout.ImageDir)
	transition := filepath.Join(imgDir, disklayout.TransitionImage)
	// A transition image left by an interrupted upgrade is garbage.
	os.Remove(transition)
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return err
	}
	if free := int64(fs.Bavail) * int64(fs.Bsize); free < imgSize {
		return fmt.Errorf("nothing was changed: %s has %d MiB free, the new image needs %d MiB", target, free>>20, imgSize>>20)
	}
	n.say("upgrading %s to %s %s (%s, %d MiB image)", img.File, rel["KAIROS_NAME"], rel["KAIROS_VERSION"], target, imgSize>>20)
	if err := n.stage(ctx, StageBefore); err != nil {
		return err
	}
	if _, err := deploy.WriteImage(transition, tree.Root, img.Label, imgSize, deploy.Progress(n.say, disklayout.TransitionImage)); err != nil {
		os.Remove(transition)
		return fmt.Errorf("writing %s (the running system is unchanged): %w", disklayout.TransitionImage, err)
	}
	if o.Recovery {
		err = n.rotateRecovery(imgDir, transition)
	} else {
		err = n.rotateActive(imgDir, transition)
	}
	if err != nil {
		return err
	}
	if !o.Recovery {
		if err := n.armBoot(mounts, dir); err != nil {
			return err
		}
	}
	if err := mounts.UnmountAll(); err != nil {
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
		// Upgrading recovery while booted from recovery.squashfs removes the
		// running image: the kernel keeps it open until the reboot and until
		// then refuses to make its file system read-only. Everything is
		// written and synced, so the upgrade stands.
		n.say("note: %v: it stays writable until the reboot (the replaced image still runs); the new image is written and synced", err)
	}
	if err := n.stage(ctx, StageAfter); err != nil {
		return err
	}
	n.say("done in %s: %s %s is installed as %s; it boots next", time.Since(start).Round(time.Second), rel["KAIROS_NAME"], rel["KAIROS_VERSION"], img.File)
	return nil
}

// rotateActive: active -> passive (unless passive is what runs: then the
// running passive stays, as upstream), transition -> active.
func (n *Node) rotateActive(imgDir, transition string) error {
	active := filepath.Join(imgDir, disklayout.Active.File)
	passive := filepath.Join(imgDir, disklayout.Passive.File)
	if n.Mode != state.PassiveBoot {
		if _, err := os.Stat(active); err == nil {
			if err := os.Rename(active, passive); err != nil {
				return fmt.Errorf("active.img -> passive.img: %w", err)
			}
			n.say("%s is now %s", disklayout.Active.File, disklayout.Passive.File)
		}
	}
	if err := os.Rename(transition, active); err != nil {
		return fmt.Errorf("transition.img -> active.img: %w", err)
	}
	if err := deploy.SyncDir(imgDir); err != nil {
		return err
	}
	// The labels follow the names (cosmetic for boot: see the package doc).
	if n.Mode != state.PassiveBoot {
		if err := deploy.Relabel(passive, disklayout.LabelPassive); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) rotateRecovery(imgDir, transition string) error {
	if err := os.Rename(transition, filepath.Join(imgDir, disklayout.Recovery.File)); err != nil {
		return fmt.Errorf("transition.img -> recovery.img: %w", err)
	}
	// A squashfs recovery would win over the new image in grub's menu.
	os.Remove(filepath.Join(imgDir, disklayout.RecoverySquash))
	return deploy.SyncDir(imgDir)
}

// armBoot boots the new active next (next_entry=cos) and arms boot
// assessment: if it does not come up, grub falls back to passive.
func (n *Node) armBoot(mounts *deploy.Mounts, stateDir string) error {
	if err := grubenv.Update(filepath.Join(stateDir, disklayout.BootAssessment), map[string]string{
		"enable_boot_assessment": "yes", "boot_assessment_tentative": "",
	}); err != nil {
		return fmt.Errorf("boot assessment: %w", err)
	}
	oem, err := n.writable(mounts, disklayout.LabelOEM)
	if err != nil {
		return err
	}
	if err := grubenv.Update(filepath.Join(oem, disklayout.OEMEnv), map[string]string{"next_entry": "cos"}); err != nil {
		return fmt.Errorf("next_entry: %w", err)
	}
	n.say("next boot: cos (active), boot assessment armed")
	return nil
}

// writable returns a writable mount of the partition labelled label:
// where it is mounted (remounted read-write when read-only), else mounted
// under WorkDir.
func (n *Node) writable(mounts *deploy.Mounts, label string) (string, error) {
	dev, err := n.Device(label)
	if err != nil {
		return "", err
	}
	if mps := n.mountsOf(dev); len(mps) > 0 {
		if mps[0].readOnly {
			if err := mounts.RemountRW(mps[0].dir); err != nil {
				return "", err
			}
		}
		return mps[0].dir, nil
	}
	dir := filepath.Join(n.WorkDir, strings.ToLower(label))
	if err := mounts.Mount(dev, dir, "ext4", ""); err != nil {
		return "", err
	}
	return dir, nil
}

func (n *Node) stage(ctx context.Context, stage string) error {
	if n.Stages == nil || !n.Stages.Has(stage) {
		return nil
	}
	n.say("stage %s", stage)
	if err := n.Stages.Run(ctx, stage, "/"); err != nil {
		return fmt.Errorf("stage %s: %w", stage, err)
	}
	return nil
}
