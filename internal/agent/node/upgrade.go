// Package node is what the agent does to an installed node's images:
// upgrade, reset from recovery, and confirming a boot.
//
// An upgrade writes the new system image next to the running one
// (transition.img), then swaps it in by renames, so that
// an interruption at any point leaves a disk that boots: before the
// renames the old images are untouched; between them grub falls back to
// passive, which is then the old active (the initramfs names loop devices
// by image file, see overlay/initrd's udev rule, not by the label inside).
// Boot assessment is armed before the first rename (see armAssessment),
// and one lock (deploy.Lock) keeps a second install, upgrade or reset
// from interleaving its renames with these.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/grubenv"
	"github.com/kairos-io/kairos/internal/rootfs"
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
	// VerifyKey is a cosign public key, a path or the PEM itself: the
	// image must carry a valid signature by it (upgrade.verify_key).
	VerifyKey string
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
	// Arch is the architecture the node runs, in Go's names (amd64,
	// arm64); empty means the agent's own.
	Arch string
	// LockFile serialises install, upgrade and reset; empty means
	// host.System.LockFile.
	LockFile string
	// Release is the running image's /etc/kairos-release (an upgrade with
	// no source reads KAIROS_IMAGE_REPO there); empty means
	// host.System.Release.
	Release string
	// ListTags lists a repository's tags; nil asks the registry.
	ListTags func(ctx context.Context, repo string, insecure bool) ([]string, error)

	verb string // the command, in progress lines
	// rename is os.Rename; tests stop an upgrade between its renames.
	rename func(oldpath, newpath string) error
}

// LabelIn finds partitions through the udev by-label directory dir (a
// test host's own).
func LabelIn(dir string) func(label string) (string, error) {
	return func(label string) (string, error) {
		dev, err := filepath.EvalSymlinks(filepath.Join(dir, label))
		if err != nil {
			return "", fmt.Errorf("no partition labelled %s: %w", label, err)
		}
		return dev, nil
	}
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
		if o.Source, err = n.newestRelease(ctx, o); err != nil || o.Source == "" {
			return err
		}
	}
	ref, err := rootfs.FromAgent(o.Source)
	if err != nil {
		return err
	}
	if o.VerifyKey != "" {
		// Checked before the lock and the pull; the pull then names the
		// verified digest, so what is written is what was checked.
		if ref, err = n.verified(ctx, ref, o); err != nil {
			return fmt.Errorf("nothing was changed: %w", err)
		}
	}
	// Taken before the pull: a second upgrade is refused at once, not
	// after minutes of download.
	unlock, err := deploy.Lock(n.LockFile)
	if err != nil {
		return err
	}
	defer unlock()
	n.say("source %s", o.Source)
	tree, err := rootfs.OpenWith(ctx, ref, rootfs.Options{Tmp: n.Tmp, Insecure: o.AllowInsecure})
	if err != nil {
		return fmt.Errorf("nothing was changed: %w", err)
	}
	defer tree.Close()
	rel, err := deploy.CheckImage(tree.Root)
	if err != nil {
		return fmt.Errorf("nothing was changed: %s: %w", o.Source, err)
	}
	if err := n.checkArch(rel, o.Source); err != nil {
		return err
	}
	if tree.Digest.Hex != "" {
		// Which image of a multi-platform tag was taken.
		n.say("pulled %s image %s", deploy.Arch(rel), tree.Digest)
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
	// A transition image left by an interrupted upgrade is garbage; with
	// the lock held, no one else is writing it. WriteImage creates it anew
	// and exclusively.
	if err := os.Remove(transition); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("nothing was changed: removing the %s an interrupted upgrade left: %w", disklayout.TransitionImage, err)
	}
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
		return fmt.Errorf("writing %s (the running system is unchanged): %w", disklayout.TransitionImage, err)
	}
	if o.Recovery {
		// One rename, atomic: recovery has no fallback to assess.
		if err := n.rotateRecovery(imgDir, transition); err != nil {
			return err
		}
	} else {
		if err := n.armAssessment(dir); err != nil {
			return err
		}
		if err := n.rotateActive(imgDir, transition); err != nil {
			return err
		}
		if err := n.bootNext(mounts); err != nil {
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
			if err := n.renameFile(active, passive); err != nil {
				return fmt.Errorf("active.img -> passive.img: %w", err)
			}
			n.say("%s is now %s", disklayout.Active.File, disklayout.Passive.File)
		}
	}
	if err := n.renameFile(transition, active); err != nil {
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

func (n *Node) renameFile(oldpath, newpath string) error {
	if n.rename != nil {
		return n.rename(oldpath, newpath)
	}
	return os.Rename(oldpath, newpath)
}

func (n *Node) rotateRecovery(imgDir, transition string) error {
	if err := os.Rename(transition, filepath.Join(imgDir, disklayout.Recovery.File)); err != nil {
		return fmt.Errorf("transition.img -> recovery.img: %w", err)
	}
	// A squashfs recovery would win over the new image in grub's menu.
	os.Remove(filepath.Join(imgDir, disklayout.RecoverySquash))
	return deploy.SyncDir(imgDir)
}

// armAssessment arms boot assessment (grub.cfg: the next boot of cos is
// tentative, and if it comes back still tentative, passive boots with
// upgrade_failure) before the first rename, so that every state an
// interruption can leave boots something sane. Booted from active A, with
// passive P and the new image N in transition.img:
//
//   - interrupted before arming: A and P untouched, A boots; the next
//     upgrade removes transition.img.
//   - armed, nothing renamed (or the upgrade failed here): A boots
//     tentatively and, having worked before, reaches userspace, where
//     ConfirmBoot clears the assessment; if it does not, P boots.
//   - active.img -> passive.img done, transition.img -> active.img not:
//     there is no active.img, so the cos entry fails to load and grub
//     takes its fallback, passive.img, which is A. The tentative mark
//     stays (only an active boot confirms), so later boots go straight to
//     A with upgrade_failure: the node runs what it ran and says the
//     upgrade failed; the next upgrade, from passive, writes active anew.
//   - both renames done: N boots tentatively; if it does not reach
//     userspace, A boots as passive with upgrade_failure. Armed after the
//     renames instead, a crash here left N unassessed: a kernel panic in
//     N rebooted into N for ever.
//   - passive.img not relabelled yet: labels are cosmetic for boot (the
//     package doc); next_entry=cos not set yet: cos is grub's default.
//
// Booted from passive, active.img is the image that failed and is only
// replaced: armed, it gets one more tentative boot before grub falls back
// to the running passive, as it would have before the upgrade.
func (n *Node) armAssessment(stateDir string) error {
	if err := grubenv.Update(filepath.Join(stateDir, disklayout.BootAssessment), map[string]string{
		"enable_boot_assessment": "yes", "boot_assessment_tentative": "",
	}); err != nil {
		return fmt.Errorf("arming boot assessment (nothing was renamed, %s is unchanged): %w", disklayout.Active.File, err)
	}
	return nil
}

// bootNext boots the new active next (next_entry=cos, one-shot), over a
// saved_entry the user may have set.
func (n *Node) bootNext(mounts *deploy.Mounts) error {
	env, err := n.userGrubEnv(mounts)
	if err != nil {
		return err
	}
	if err := grubenv.Update(env, map[string]string{"next_entry": "cos"}); err != nil {
		return fmt.Errorf("next_entry: %w", err)
	}
	n.say("next boot: cos (active), boot assessment armed")
	return nil
}

// userGrubEnv is the grub environment grub reads the user's settings
// from: COS_STATE's grubenv when there is one (COS_OEM is encrypted),
// else COS_OEM's.
func (n *Node) userGrubEnv(mounts *deploy.Mounts) (string, error) {
	state, err := n.writable(mounts, disklayout.LabelState)
	if err != nil {
		return "", err
	}
	if p := filepath.Join(state, disklayout.StateEnv); fileExists(p) {
		return p, nil
	}
	oem, err := n.writable(mounts, disklayout.LabelOEM)
	if err != nil {
		return "", err
	}
	return filepath.Join(oem, disklayout.OEMEnv), nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// checkArch refuses an image built for another architecture than the
// node's: it would not boot, and passive would then be the only image
// left that does. An image that names none (older builds) is taken.
func (n *Node) checkArch(rel map[string]string, src string) error {
	node := n.Arch
	if node == "" {
		// The agent ships in the running image, built for its machine.
		node = runtime.GOARCH
	}
	if arch := deploy.Arch(rel); arch != "" && arch != node {
		return fmt.Errorf("nothing was changed: %s is an image for %s, this node is %s", src, arch, node)
	}
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

// newestRelease is the source of an upgrade that names none, as upstream:
// the newest release of the running image's line in its own repository
// (KAIROS_IMAGE_REPO). "" and no error when the node runs the newest.
func (n *Node) newestRelease(ctx context.Context, o UpgradeOptions) (string, error) {
	noSource := fmt.Sprintf("give --source %s or set upgrade.source", strings.Join(rootfs.AgentKinds, "|"))
	path := n.Release
	if path == "" {
		path = host.System.Release
	}
	rel, err := RunningRelease(path)
	if err != nil {
		return "", fmt.Errorf("no source, and the running release is unknown (%v): %s", err, noSource)
	}
	repo := rel["KAIROS_IMAGE_REPO"]
	if repo == "" {
		return "", fmt.Errorf("no source: this image names no repository of its own (KAIROS_IMAGE_REPO, the build's IMAGE_REPO): %s", noSource)
	}
	if o.Recovery {
		return "", fmt.Errorf("no source: --recovery takes the image to write: %s", noSource)
	}
	list := n.ListTags
	if list == nil {
		list = ListTags
	}
	tags, err := list(ctx, repo, o.AllowInsecure)
	if err != nil {
		return "", fmt.Errorf("looking for a newer release in %s: %w", repo, err)
	}
	tag := NewestImage(rel, tags)
	if tag == "" {
		n.say("running %s, the newest release in %s: nothing to do", rel["KAIROS_VERSION"], repo)
		return "", nil
	}
	n.say("newest release in %s: %s (running %s)", repo, tag, rel["KAIROS_VERSION"])
	return "oci:" + repo + ":" + tag, nil
}

// ListTags lists a repository's tags with the pull policy of upgrades
// (HTTPS unless insecure).
func ListTags(ctx context.Context, repo string, insecure bool) ([]string, error) {
	r, err := name.NewRepository(repo, rootfs.NameOptions(insecure)...)
	if err != nil {
		return nil, err
	}
	return remote.List(r, rootfs.RemoteOptions(ctx, insecure)...)
}
