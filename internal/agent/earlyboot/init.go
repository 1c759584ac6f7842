package earlyboot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

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
// systemd (every boot but an installed system's), or switches to the
// assembled root; a failure is said on the console and the node reboots,
// as rd.emergency=reboot makes dracut do.
func Main() {
	log := io.Writer(os.Stderr)
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
	if fast, _ := Decide(cmdline); !fast {
		unix.Unmount("/proc", 0)
		handOver(log, "")
	}
	err = run(cmdline, mount.Kmsg{})
	var h handOverError
	if errors.As(err, &h) {
		// Nothing is mounted but the kernel file systems: they go, and
		// dracut's systemd boots as if it had been first.
		for i := len(apiMounts) - 1; i >= 0; i-- {
			unix.Unmount(apiMounts[i].target, unix.MNT_DETACH)
		}
		handOver(log, h.why)
	}
	fail(log, err)
}

// handOverError is a boot the fast path leaves to dracut before changing
// anything: the partition with the boot image did not show up, which
// dracut's udev may still find (a driver or a device this path does not
// know).
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

func run(cmdline string, log io.Writer) error {
	start := time.Now()
	// The stages' log too: the console shows it, the booted system's
	// journal keeps it (this path has no journal of its own).
	logrus.SetOutput(log)
	for _, m := range apiMounts[1:] {
		os.MkdirAll(m.target, 0o755)
		if err := mountOpts(m.source, m.target, m.fstype, m.options); err != nil {
			return fmt.Errorf("mounting %s: %w", m.target, err)
		}
	}
	cp := &Coldplug{Sys: "/sys", Dev: "/dev"}
	if err := cp.Start(); err != nil {
		return fmt.Errorf("watching for devices: %w", err)
	}
	b, err := mount.ParseBootImage(cmdline)
	if err != nil {
		cp.Stop()
		return err
	}
	if !waitLink(filepath.Join("/dev/disk/by-label", b.Partition), partitionWait) {
		cp.Stop()
		return handOverError{fmt.Sprintf("no file system labeled %s after %s", b.Partition, partitionWait)}
	}
	// Steps of the dracut path: the boot image on a loop device (with
	// the fallback when it cannot be), the root, then the layout.
	err = mount.Fallback{
		Loop: mount.Loop, Arm: mount.ArmFallback, Log: log,
		Reboot: func() error {
			unix.Sync()
			return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		},
	}.LoopOrFallback(cmdline)
	if err != nil {
		cp.Stop()
		return err
	}
	if err := mountRoot(cmdline); err != nil {
		cp.Stop()
		return err
	}
	// The TPM's driver, for encrypted partitions, has no device the
	// steps wait for: the drivers being loaded finish first.
	cp.Settle(10 * time.Second)
	err = mount.Sysroot(cmdline, sysroot, "/run", log)
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

// mountRoot mounts the root= device (root=LABEL=COS_ACTIVE, the image's
// loop device) read-only at sysroot.
func mountRoot(cmdline string) error {
	label := ""
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "root=LABEL="); ok {
			label = v
		}
	}
	if LinkName(label) == "" {
		return fmt.Errorf("root=LABEL=<label> expected on the command line")
	}
	link := filepath.Join("/dev/disk/by-label", label)
	if !waitLink(link, rootWait) {
		return fmt.Errorf("no device labeled %s after %s", label, rootWait)
	}
	dev, err := filepath.EvalSymlinks(link)
	if err != nil {
		return err
	}
	f, err := os.Open(dev)
	if err != nil {
		return err
	}
	fstype, _ := Probe(f)
	f.Close()
	if fstype != "ext4" && fstype != "squashfs" {
		return fmt.Errorf("%s (%s): not an ext4 or squashfs image", dev, label)
	}
	os.MkdirAll(sysroot, 0o755)
	if err := unix.Mount(dev, sysroot, fstype, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mounting %s (%s) at %s: %w", dev, label, sysroot, err)
	}
	return nil
}

// waitLink waits for a /dev/disk link to resolve.
func waitLink(link string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := filepath.EvalSymlinks(link); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mountOpts(source, target, fstype, options string) error {
	var flags uintptr
	var data []string
	for _, o := range strings.Split(options, ",") {
		switch o {
		case "nosuid":
			flags |= unix.MS_NOSUID
		case "nodev":
			flags |= unix.MS_NODEV
		case "noexec":
			flags |= unix.MS_NOEXEC
		default:
			data = append(data, o)
		}
	}
	return unix.Mount(source, target, fstype, flags, strings.Join(data, ","))
}
