package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/grubenv"
	"github.com/kairos-io/kairos/internal/mounttab"
)

// Stages of the contract around a reset.
const (
	StageBeforeReset = "before-reset"
	StageAfterReset  = "after-reset"
)

// ResetOptions are what the user asked for.
type ResetOptions struct {
	// ResetOEM formats COS_OEM too (the user's cloud-configs go).
	ResetOEM bool
	// KeepPersistent leaves COS_PERSISTENT as it is (reset.reset-persistent: false).
	KeepPersistent bool
}

// Reset redeploys active and passive from the recovery image and formats
// COS_PERSISTENT (and COS_OEM when asked). It runs only from recovery:
// the images it replaces must not be in use.
func (n *Node) Reset(ctx context.Context, o ResetOptions) (err error) {
	start := time.Now()
	n.verb = "reset"
	if n.Mode != state.RecoveryBoot {
		return fmt.Errorf("reset runs from recovery only (this boot is %s): boot the recovery entry, or the statereset entry to reset unattended", n.Mode)
	}
	unlock, err := deploy.Lock(n.LockFile)
	if err != nil {
		return err
	}
	defer unlock()
	if err := n.stage(ctx, StageBeforeReset); err != nil {
		return err
	}
	mounts := &deploy.Mounts{}
	defer func() {
		if uerr := mounts.UnmountAll(); uerr != nil && err == nil {
			err = uerr
		}
	}()
	recovery, err := n.mounted(disklayout.LabelRecovery)
	if err != nil {
		return err
	}
	stateDir, err := n.writable(mounts, disklayout.LabelState)
	if err != nil {
		return err
	}
	imgDir := filepath.Join(stateDir, disklayout.ImageDir)
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		return err
	}
	active := filepath.Join(imgDir, disklayout.Active.File)
	passive := filepath.Join(imgDir, disklayout.Passive.File)
	transition := filepath.Join(imgDir, disklayout.TransitionImage)
	// Left by an interrupted upgrade or reset; the lock keeps out anyone
	// still writing it.
	if err := os.Remove(transition); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("removing a leftover %s: %w", disklayout.TransitionImage, err)
	}

	// The new active is written aside, then renamed over the old one.
	recImg := filepath.Join(recovery, disklayout.ImageDir, disklayout.Recovery.File)
	recSquash := filepath.Join(recovery, disklayout.ImageDir, disklayout.RecoverySquash)
	var menu []byte
	if _, serr := os.Stat(recSquash); serr == nil {
		n.say("active.img from %s", disklayout.RecoverySquash)
		dir := filepath.Join(n.WorkDir, "recovery-image")
		if err := mounts.Mount(recSquash, dir, "squashfs", "loop"); err != nil {
			return err
		}
		tree, err := fstree.DirSource(dir)
		if err != nil {
			return err
		}
		size, err := imageSize(tree)
		if err != nil {
			return err
		}
		if _, err := deploy.WriteImage(transition, tree, disklayout.LabelActive, size, deploy.Progress(n.say, disklayout.Active.File)); err != nil {
			return fmt.Errorf("writing active.img: %w", err)
		}
		menu, _ = os.ReadFile(filepath.Join(dir, disklayout.StateGrubCfg))
	} else {
		n.say("active.img from %s", disklayout.Recovery.File)
		if err := deploy.CopySparse(transition, recImg); err != nil {
			return fmt.Errorf("copying %s: %w", disklayout.Recovery.File, err)
		}
		if err := deploy.Relabel(transition, disklayout.LabelActive); err != nil {
			return err
		}
		// The running root is the recovery image: its menu is ours.
		menu, _ = os.ReadFile(disklayout.StateGrubCfg)
	}
	if err := os.Rename(transition, active); err != nil {
		return err
	}
	n.say("passive.img: copy of active.img")
	if err := deploy.CopySparse(transition, active); err != nil {
		return err
	}
	if err := deploy.Relabel(transition, disklayout.LabelPassive); err != nil {
		return err
	}
	if err := os.Rename(transition, passive); err != nil {
		return err
	}
	if err := deploy.SyncDir(imgDir); err != nil {
		return err
	}
	// The state partition's boot files as a fresh install has them.
	if len(menu) > 0 {
		if err := os.WriteFile(filepath.Join(stateDir, disklayout.StateMenu), menu, 0o644); err != nil {
			return err
		}
	}
	for _, f := range []string{disklayout.BootAssessment, disklayout.StateOEMEnv} {
		if err := grubenv.Update(filepath.Join(stateDir, f), map[string]string{"enable_boot_assessment": "", "boot_assessment_tentative": ""}); err != nil {
			return err
		}
	}

	if !o.KeepPersistent {
		if err := n.format(disklayout.LabelPersistent); err != nil {
			return err
		}
	}
	if o.ResetOEM {
		if err := n.format(disklayout.LabelOEM); err != nil {
			return err
		}
		oem, err := n.writable(mounts, disklayout.LabelOEM)
		if err != nil {
			return err
		}
		if err := grubenv.Update(filepath.Join(oem, disklayout.OEMEnv), nil); err != nil {
			return err
		}
	}
	if err := mounts.UnmountAll(); err != nil {
		return err
	}
	if err := n.stage(ctx, StageAfterReset); err != nil {
		return err
	}
	n.say("done in %s: active and passive are the recovery image", time.Since(start).Round(time.Second))
	return nil
}

func imageSize(tree *fstree.Node) (int64, error) {
	rootfs, err := ext4.RequiredSize(tree, ext4.Options{Label: disklayout.LabelActive})
	if err != nil {
		return 0, err
	}
	return disklayout.ImageSize(rootfs), nil
}

// mounted is where the partition labelled label is mounted (read-only is
// fine), or an error.
func (n *Node) mounted(label string) (string, error) {
	dev, err := n.Device(label)
	if err != nil {
		return "", err
	}
	if mps := n.mountsOf(dev); len(mps) > 0 {
		return mps[0].dir, nil
	}
	return "", fmt.Errorf("%s (%s) is not mounted", label, dev)
}

// mountPoint is where a device is mounted.
type mountPoint struct {
	dir      string
	readOnly bool
}

// mountsOf lists the mount points of dev, in mount order: the first is
// the partition's root, later ones are binds of its subdirectories.
func (n *Node) mountsOf(dev string) []mountPoint {
	table, err := mounttab.Read(n.Mounts)
	if err != nil {
		return nil
	}
	var out []mountPoint
	for _, m := range table {
		if m.Device() == dev {
			out = append(out, mountPoint{dir: m.Target, readOnly: m.ReadOnly()})
		}
	}
	return out
}

// format recreates the ext4 file system of a partition. A mounted one
// (recovery mounts COS_PERSISTENT at /usr/local and binds its paths, and
// the login shell and the journal keep them busy) is emptied instead:
// formatting under a live mount would be undone by its last write.
func (n *Node) format(label string) error {
	dev, err := n.Device(label)
	if err != nil {
		return err
	}
	points := n.mountsOf(dev)
	if len(points) == 0 {
		n.say("%s: new ext4 file system on %s", label, dev)
		return deploy.Run("mkfs.ext4", "-F", "-q", "-L", label, dev)
	}
	root := points[0].dir
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	n.say("%s: in use at %s: erasing its content", label, root)
	for _, e := range entries {
		if e.Name() == "lost+found" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("erasing %s: %w", label, err)
		}
	}
	unix.Sync()
	return nil
}

// ConfirmBoot is run once an active boot reached userspace: it clears the
// boot assessment an upgrade armed, so the next boot is a normal one.
func (n *Node) ConfirmBoot() error {
	n.verb = "start"
	if n.Mode != state.ActiveBoot {
		return nil
	}
	// Read where the initramfs mounted it; remount only to change it.
	ro, err := n.mounted(disklayout.LabelState)
	if err != nil {
		return err
	}
	vars := map[string]string{}
	if data, err := os.ReadFile(filepath.Join(ro, disklayout.BootAssessment)); err == nil {
		vars, _ = grubenv.Decode(data)
	}
	if vars["enable_boot_assessment"] == "" && vars["boot_assessment_tentative"] == "" {
		return nil
	}
	mounts := &deploy.Mounts{}
	dir, err := n.writable(mounts, disklayout.LabelState)
	if err != nil {
		return err
	}
	err = grubenv.Update(filepath.Join(dir, disklayout.BootAssessment), map[string]string{"enable_boot_assessment": "", "boot_assessment_tentative": ""})
	if uerr := mounts.UnmountAll(); err == nil {
		err = uerr
	}
	if err == nil {
		n.say("boot of the upgraded image confirmed: boot assessment cleared")
	}
	return err
}
