package earlyboot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/mount"
)

// Paths of the initramfs the fast path uses.
const (
	sysroot = "/sysroot"
	// dracutInit is the initramfs's systemd, which dracut made /init and
	// which every other boot runs.
	dracutInit = "/usr/lib/systemd/systemd"
)

// partitionWait bounds the wait for the partition holding the boot image
// (COS_STATE, COS_RECOVERY) before the boot is left to dracut, whose udev
// knows every device; a disk shows up within a few seconds.
const partitionWait = 20 * time.Second

// rootWait bounds the wait for the root image's loop device, attached a
// moment before: its label link is made from the uevent.
const rootWait = 20 * time.Second

// Main is PID 1 in the initramfs. It never returns: it execs dracut's
// systemd (every boot but an installed system's or live media's), or
// switches to the assembled root; a failure is said on the console and
// the node reboots, as rd.emergency=reboot makes dracut do.
func Main() {
	// The kernel log, which every console= shows (PID 1's stderr is only
	// the last one's, often tty1), and the booted system's journal keeps.
	log := io.Writer(console{})
	// The kernel starts init without a PATH; the steps run the
	// initramfs's tools (modprobe, mount, losetup, cryptsetup).
	if os.Getenv("PATH") == "" {
		os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
	}
	defer func() {
		if r := recover(); r != nil {
			fail(log, fmt.Errorf("internal error: %v", r))
		}
	}()
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && err != unix.EBUSY {
		handOver(log, fmt.Sprintf("mounting /proc: %v", err))
	}
	data, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		handOver(log, err.Error())
	}
	cmdline := strings.TrimSpace(string(data))
	boot, live, _ := Decide(cmdline)
	if boot == Dracut {
		unix.Unmount("/proc", 0)
		handOver(log, "")
	}
	err = run(cmdline, boot, live, log)
	var h handOverError
	if errors.As(err, &h) {
		// Said while /dev/kmsg is there. Nothing is mounted but the
		// kernel file systems: they go, and dracut's systemd boots as if
		// it had been first.
		fmt.Fprintf(log, "kairos: %s: booting through dracut\n", h.why)
		for i := len(apiMounts) - 1; i >= 0; i-- {
			unix.Unmount(apiMounts[i].target, unix.MNT_DETACH)
		}
		handOver(log, "")
	}
	fail(log, err)
}

// console writes to the kernel log, or to stderr before /dev is mounted.
type console struct{}

// KernelLog: the mounter need not copy its console lines to the kernel
// log.
func (console) KernelLog() {}

func (console) Write(p []byte) (int, error) {
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		return os.Stderr.Write(p)
	}
	return mount.Kmsg{}.Write(p)
}

// handOverError is a boot the fast path leaves to dracut before changing
// anything: the boot image's partition or the live medium did not show up
// (dracut's udev may still find it: a driver or a device this path does
// not know), or the node has encrypted partitions.
type handOverError struct{ why string }

func (h handOverError) Error() string { return h.why }

// handOver execs dracut's systemd with the kernel's arguments: the
// initramfs then boots as dracut made it. Called before anything but
// /proc was mounted (and /proc is unmounted first).
func handOver(log io.Writer, why string) {
	if why != "" {
		fmt.Fprintf(log, "kairos: %s: booting through dracut\n", why)
	}
	argv := append([]string{"/init"}, os.Args[1:]...)
	err := unix.Exec(dracutInit, argv, os.Environ())
	fmt.Fprintf(log, "kairos: cannot run %s: %v\n", dracutInit, err)
	// Nothing else can run the boot.
	for {
		time.Sleep(time.Hour)
	}
}

// fail says why the boot stops and reboots, for grub's boot assessment
// to take the next entry when the failure lasts.
func fail(log io.Writer, err error) {
	fmt.Fprintf(log, "kairos: cannot assemble the immutable root: %v\n", err)
	fmt.Fprintf(log, "kairos: rebooting in 10 seconds (boot with rd.kairos.dracut to use dracut's initramfs instead)\n")
	time.Sleep(10 * time.Second)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for {
		time.Sleep(time.Hour)
	}
}

func run(cmdline string, boot Boot, live LiveMedium, log io.Writer) error {
	start := time.Now()
	// The stages' log too: the console shows it, the booted system's
	// journal keeps it (this path has no journal of its own).
	logrus.SetOutput(log)
	for _, m := range apiMounts[1:] {
		os.MkdirAll(m.target, 0o755)
		if err := mount.Syscall(m.source, m.target, m.fstype, m.options); err != nil {
			return handOverError{fmt.Sprintf("mounting %s: %v", m.target, err)}
		}
	}
	cp := &Coldplug{Sys: "/sys", Dev: "/dev"}
	if err := cp.Start(); err != nil {
		return handOverError{fmt.Sprintf("watching for devices: %v", err)}
	}
	var err error
	if boot == Live {
		err = assembleLive(cmdline, live, cp, log)
	} else {
		err = assembleInstalled(cmdline, cp, log)
	}
	cp.Stop()
	if err != nil {
		return err
	}
	init := "/sbin/init"
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "init="); ok && v != "" {
			init = v
		}
	}
	fmt.Fprintf(log, "kairos: root assembled in %.1fs, starting %s\n", time.Since(start).Seconds(), init)
	return SwitchRoot(sysroot, init, append([]string{init}, os.Args[1:]...))
}

// assembleInstalled runs the steps of the dracut path: the boot image on
// a loop device (with the fallback when it cannot be), the root, then the
// layout.
func assembleInstalled(cmdline string, cp *Coldplug, log io.Writer) error {
	b, err := mount.ParseBootImage(cmdline)
	if err != nil {
		return err
	}
	if _, err := mount.WaitLabel(b.Partition, partitionWait); err != nil {
		return handOverError{err.Error()}
	}
	if name, label := encrypted(cp); name != "" {
		return handOverError{fmt.Sprintf("%s is encrypted (%s): opened through dracut's systemd", name, label)}
	}
	err = mount.Fallback{
		Loop: mount.Loop, Arm: mount.ArmFallback, Log: log,
		Reboot: func() error {
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		},
	}.LoopOrFallback(cmdline)
	if err != nil {
		return err
	}
	if err := mountRoot(cmdline); err != nil {
		return err
	}
	// The TPM's driver, for encrypted partitions, has no device the
	// steps wait for: the drivers being loaded finish first.
	cp.Settle(10 * time.Second)
	return mount.Sysroot(cmdline, sysroot, "/run", log)
}

// encrypted returns a LUKS container among the block devices present
// (its partitions appear with COS_STATE's). A node with encrypted
// partitions boots through dracut: there udev's device-mapper rules
// record the opened containers, which the booted system's udev, lsblk and
// findmnt need to know them by their labels.
func encrypted(cp *Coldplug) (name, label string) {
	entries, _ := os.ReadDir(filepath.Join(cp.Sys, "class/block"))
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "sr") {
			continue
		}
		f, err := os.Open(filepath.Join(cp.Dev, n))
		if err != nil {
			continue
		}
		fstype, l := blockdev.Probe(f)
		f.Close()
		if fstype == "crypto_LUKS" {
			return n, l
		}
	}
	return "", ""
}

// Live media, where dracut's dmsquash-live puts them: the medium at
// /run/initramfs/live, its squashfs at /run/rootfsbase, the root an
// overlay of it with a tmpfs upper layer in /run.
const (
	liveDir     = "/run/initramfs/live"
	liveBase    = "/run/rootfsbase"
	liveUpper   = "/run/overlayfs"
	liveWorkDir = "/run/ovlwork"
)

// assembleLive mounts a live medium's root as dracut's dmsquash-live does
// with rd.live.overlay.overlayfs.
func assembleLive(cmdline string, lm LiveMedium, cp *Coldplug, log io.Writer) error {
	dev, err := mount.WaitLabel(lm.Label, partitionWait)
	if err != nil {
		return handOverError{err.Error()}
	}
	fstype, err := probeFile(dev)
	if err != nil || (fstype != "iso9660" && fstype != "vfat" && fstype != "ext4") {
		return handOverError{fmt.Sprintf("%s (%s): %q is not a live medium this path mounts", dev, lm.Label, fstype)}
	}
	os.MkdirAll(liveDir, 0o755)
	if err := unix.Mount(dev, liveDir, fstype, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mounting %s (%s) at %s: %w", dev, lm.Label, liveDir, err)
	}
	img := filepath.Join(liveDir, lm.Dir, lm.Image)
	if _, err := os.Stat(img); err != nil {
		return fmt.Errorf("the live root %s is missing on %s: %w", filepath.Join(lm.Dir, lm.Image), lm.Label, err)
	}
	out, err := exec.Command("losetup", "--read-only", "--find", "--show", img).CombinedOutput()
	if err != nil {
		return fmt.Errorf("attaching %s to a loop device: %w: %s", img, err, strings.TrimSpace(string(out)))
	}
	loop := strings.TrimSpace(string(out))
	for _, d := range []string{liveBase, liveUpper, liveWorkDir, sysroot} {
		os.MkdirAll(d, 0o755)
	}
	if err := unix.Mount(loop, liveBase, "squashfs", unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mounting %s (%s) at %s: %w", img, loop, liveBase, err)
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", liveBase, liveUpper, liveWorkDir)
	if err := unix.Mount("LiveOS_rootfs", sysroot, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the live root overlay: %w", err)
	}
	fmt.Fprintf(log, "kairos: live boot from %s on %s (%s)\n", filepath.Join(lm.Dir, lm.Image), lm.Label, dev)
	return mount.Run(mount.Options{Cmdline: cmdline, Sysroot: sysroot, RunDir: "/run"})
}

func probeFile(dev string) (string, error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fstype, _ := blockdev.Probe(f)
	return fstype, nil
}

// mountRoot mounts the root= device (root=LABEL=COS_ACTIVE, the image's
// loop device) read-only at sysroot.
func mountRoot(cmdline string) error {
	label := ""
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "root=LABEL="); ok {
			label = v
		}
	}
	if blockdev.LinkName(label) == "" {
		return fmt.Errorf("root=LABEL=<label> expected on the command line")
	}
	dev, err := mount.WaitLabel(label, rootWait)
	if err != nil {
		return err
	}
	fstype, err := probeFile(dev)
	if err != nil {
		return err
	}
	if fstype != "ext4" && fstype != "squashfs" {
		return fmt.Errorf("%s (%s): not an ext4 or squashfs image", dev, label)
	}
	os.MkdirAll(sysroot, 0o755)
	if err := unix.Mount(dev, sysroot, fstype, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mounting %s (%s) at %s: %w", dev, label, sysroot, err)
	}
	return nil
}
