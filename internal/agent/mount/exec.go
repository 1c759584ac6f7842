package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/crypt"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/mounttab"
	"github.com/kairos-io/kairos/internal/stages"
)

// deviceTimeout bounds the wait for a partition: a missing disk is an
// error on the console, never a hang.
const deviceTimeout = 60 * time.Second

// Loop runs before the root is mounted (kairos-loop.service in the
// initramfs): it mounts the partition holding the boot image read-only at
// host.System.StateDir (COS_STATE, or COS_RECOVERY for recovery boots)
// and attaches the image to a read-only loop device, whose file
// system label (COS_ACTIVE, COS_PASSIVE, COS_SYSTEM) is the root= device
// the initramfs then mounts at /sysroot.
func Loop(cmdline string, log io.Writer) error {
	b, err := ParseBootImage(cmdline)
	if err != nil {
		return err
	}
	dev, err := WaitLabel(b.Partition, deviceTimeout)
	if err != nil {
		return err
	}
	stateDir := host.System.StateDir
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	if !mounted(stateDir) {
		if err := run(log, "mount", "-o", "ro", dev, stateDir); err != nil {
			return fmt.Errorf("mounting %s (%s) at %s: %w", b.Partition, dev, stateDir, err)
		}
	}
	img := filepath.Join(stateDir, b.Image)
	if _, err := os.Stat(img); err != nil {
		return fmt.Errorf("the boot image %s is missing on %s: %w", b.Image, b.Partition, err)
	}
	if err := run(log, "losetup", "--read-only", "--find", "--show", img); err != nil {
		return fmt.Errorf("attaching %s to a loop device: %w", img, err)
	}
	fmt.Fprintf(log, "kairos: %s boot from %s on %s\n", b.Mode, b.Image, b.Partition)
	return nil
}

// Sysroot runs in the initramfs after the root image is mounted at
// sysroot (dracut pre-pivot): COS_OEM, the rootfs stage (which may change
// the layout, as upstream: cos-layout.env), the rest of the contract's
// mount order with the node's layout, the boot mode sentinel, /etc/fstab,
// then the initramfs stage.
func Sysroot(cmdline, sysroot, runDir string, log io.Writer) error {
	b, err := ParseBootImage(cmdline)
	if err != nil {
		return err
	}
	ctx := context.Background()
	// Paths the image lacks, which the read-only root cannot get: said in
	// one line, they are expected (the contract's list is for every
	// distro).
	var absent []string
	mount := func(s Step) error {
		if err := apply(s, log); err != nil {
			if s.Optional && errors.Is(err, errNoMountPoint) {
				absent = append(absent, strings.TrimPrefix(s.Target, strings.TrimSuffix(sysroot, "/")))
				return nil
			}
			if s.Optional && errors.Is(err, errSkip) {
				fmt.Fprintf(log, "kairos: skipped %s: %v\n", s, err)
				return nil
			}
			return fmt.Errorf("mounting %s: %w", s, err)
		}
		return nil
	}
	// Encrypted COS_OEM and COS_PERSISTENT open first: then their file
	// systems appear under their labels like clear ones.
	unlockEncrypted(ctx, &crypt.Tools{Sys: host.System.Sys, Dev: host.System.Dev}, log)
	plan := SysrootPlan(b, sysroot, Layout{})
	if err := mount(plan[0]); err != nil { // COS_OEM: the configs
		return err
	}
	// The sentinel first, as upstream: rootfs-stage conditions such as
	// `[ ! -f /run/cos/recovery_mode ]` (upstream's "grow persistent")
	// read it.
	if err := writeSentinel(runDir, b.Mode); err != nil {
		return err
	}
	sources := runStage(ctx, sysroot, runDir, "rootfs", log)
	layout := nodeLayout(cmdline, sysroot, runDir, sources, log)
	for _, s := range SysrootPlan(b, sysroot, layout)[1:] {
		if err := mount(s); err != nil {
			return err
		}
	}
	if len(absent) > 0 {
		fmt.Fprintf(log, "kairos: not in the image, not mounted: %s\n", strings.Join(absent, " "))
	}
	if err := os.WriteFile(filepath.Join(sysroot, "etc/fstab"), []byte(Fstab(b)), 0o644); err != nil {
		return fmt.Errorf("writing /etc/fstab: %w", err)
	}
	if state.UpgradeFailed(cmdline) {
		// grub's boot assessment fell back to passive after an upgrade.
		if err := os.WriteFile(filepath.Join(runDir, "cos", state.UpgradeFailureSentinel), nil, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(log, "kairos: the upgraded image did not boot: running passive (/run/cos/%s)\n", state.UpgradeFailureSentinel)
	}
	// /usr/local is mounted now: its cloud-configs join.
	runStage(ctx, sysroot, runDir, "initramfs", log)
	return nil
}

// unlockEncrypted opens the encrypted partitions of the contract with the
// key the TPM releases. One that does not open stays locked and is not
// mounted (its mount is skipped as for a missing partition); the console
// says why, the data stays as it is, and the boot goes on.
func unlockEncrypted(ctx context.Context, tools *crypt.Tools, log io.Writer) {
	// The pre-pivot hook's output reaches the journal, not the console:
	// what an operator at the machine must see goes to the kernel log too.
	console := log
	if _, ok := log.(interface{ KernelLog() }); !ok {
		console = io.MultiWriter(log, Kmsg{})
	}
	found, err := crypt.Find(filepath.Join(host.System.Sys, "class/block"), host.System.Dev)
	if err != nil {
		fmt.Fprintf(console, "kairos: encrypted partitions: %v\n", err)
		return
	}
	for _, c := range found {
		if _, err := os.Stat(filepath.Join(host.System.Dev, "mapper", crypt.MapperName(c.Label))); err == nil {
			continue // already open
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := tools.Unlock(ctx, c.Dev, c.Label)
		cancel()
		if err != nil {
			fmt.Fprintf(console, "kairos: %s (%s) is encrypted and the TPM did not release its key: it stays locked and is not mounted; its data is untouched.\n", c.Label, c.Dev)
			fmt.Fprintf(console, "kairos: the key is sealed to this machine's TPM and its Secure Boot state (PCR %s): another or a cleared TPM, or changed Secure Boot keys, cannot open it.\n", crypt.PCRs)
			fmt.Fprintf(console, "kairos: with the recovery passphrase: cryptsetup open %s %s. Cause: %v\n", c.Dev, crypt.MapperName(c.Label), err)
			continue
		}
		fmt.Fprintf(console, "kairos: %s (%s) unlocked with the TPM\n", c.Label, c.Dev)
	}
}

// Kmsg writes each line to the kernel log (/dev/kmsg) at warning level,
// which the console shows and the booted system's journal keeps; best
// effort. Each write opens /dev/kmsg anew: the kernel's rate limit of
// user messages is per open file, so no line is dropped.
type Kmsg struct{}

// KernelLog marks a writer whose lines reach the kernel log already.
func (Kmsg) KernelLog() {}

func (Kmsg) Write(p []byte) (int, error) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		return len(p), nil
	}
	defer f.Close()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f.Write([]byte("<4>" + line + "\n"))
	}
	return len(p), nil
}

// nodeLayout reads the layout the rootfs stage wrote (below sysroot, and
// in the initramfs's own /run), the configs' install.bind_mounts and
// ephemeral_mounts, and the kernel command line.
func nodeLayout(cmdline, sysroot, runDir string, sources []stages.Source, log io.Writer) Layout {
	var env [][]byte
	for _, p := range []string{filepath.Join(runDir, strings.TrimPrefix(LayoutEnv, "/run")), filepath.Join(sysroot, LayoutEnv)} {
		if data, err := os.ReadFile(p); err == nil {
			env = append(env, data)
		}
	}
	var cfgs []*cloudconfig.Config
	for _, s := range sources {
		if s.Header {
			cfgs = append(cfgs, s.Config)
		}
	}
	l, errs := ReadLayout(cmdline, env, cfgs)
	for _, err := range errs {
		fmt.Fprintf(log, "kairos: layout: %v\n", err)
	}
	return l
}

// EarlyStages run in the initramfs on the assembled root, before
// switch-root.
var EarlyStages = []string{"rootfs", "initramfs"}

// RunEarlyStages runs the rootfs and initramfs cloud-config stages against
// sysroot: files and directories land below it, commands run chrooted into
// it. Failures are reported and never stop the boot.
func RunEarlyStages(ctx context.Context, sysroot string, log io.Writer) {
	for _, st := range EarlyStages {
		runStage(ctx, sysroot, "", st, log)
	}
}

// runStage loads the configs below sysroot and runs one stage there, on
// the booting node: its kernel is the running one, and the steps' /run
// is runDir (the initramfs's, the system's after switch-root; "" keeps it
// below sysroot). It returns the configs read.
func runStage(ctx context.Context, sysroot, runDir, stage string, log io.Writer) []stages.Source {
	sources, errs := stages.Load(sysroot, stages.DefaultDirs)
	for _, err := range errs {
		fmt.Fprintf(log, "kairos: cloud-config skipped: %v\n", err)
	}
	set := stages.Set{Sources: sources, Log: log, Live: true, RunDir: runDir}
	// Upstream runs these stages in the initramfs itself; here commands
	// run chrooted into sysroot, whose /run is the image's empty
	// directory until switch-root moves the initramfs's /run there. For
	// the stage, the initramfs's /run is bound on it, so that a command
	// sees the sentinels and files other steps put in /run.
	if runDir != "" {
		run := filepath.Join(sysroot, "run")
		// Not recursive: the mounts below /run (cos-state, the overlay)
		// are shared, and unmounting a recursive copy afterwards would
		// propagate and take the originals with it (seen: the booted
		// system without /run/initramfs/cos-state).
		if err := unix.Mount(runDir, run, "", unix.MS_BIND, ""); err != nil {
			fmt.Fprintf(log, "kairos: binding %s on %s for the %s stage: %v\n", runDir, run, stage, err)
		} else {
			defer unix.Unmount(run, unix.MNT_DETACH)
		}
	}
	if err := set.Run(ctx, stage, sysroot); err != nil {
		fmt.Fprintf(log, "kairos: %v\n", err)
	}
	return sources
}

var (
	errSkip = errors.New("not present")
	// errNoMountPoint is a target the image lacks on its read-only root.
	errNoMountPoint = fmt.Errorf("%w: no mount point", errSkip)
)

func apply(s Step, log io.Writer) error {
	src := s.Source
	if s.Label != "" {
		dev, err := WaitLabel(s.Label, 10*time.Second)
		if err != nil {
			return fmt.Errorf("%w: %v", errSkip, err)
		}
		src = dev
	}
	if st, err := os.Stat(s.Target); err != nil || !st.IsDir() {
		// The read-only root cannot get new mount points.
		if err := os.MkdirAll(s.Target, 0o755); err != nil {
			if errors.Is(err, unix.EROFS) {
				return fmt.Errorf("%w: %s: %v", errNoMountPoint, s.Target, err)
			}
			return fmt.Errorf("%w: mount point %s: %v", errSkip, s.Target, err)
		}
	}
	for _, d := range s.Mkdir {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if s.SeedFrom != "" {
		if _, err := os.Stat(src); os.IsNotExist(err) {
			if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
				return fmt.Errorf("%w: %v", errSkip, err)
			}
			// First boot: the persistent copy starts as the image's
			// content, or empty for a path the image lacks (a node's
			// own bind_mounts).
			if _, err := os.Stat(s.SeedFrom); err == nil {
				if err := run(log, "cp", "-a", s.SeedFrom, src); err != nil {
					return err
				}
			} else if err := os.Mkdir(src, 0o755); err != nil {
				return err
			}
		}
	}
	return Syscall(src, s.Target, s.FSType, s.Options)
}

// WaitLabel waits for the by-label link of a file system (udev's, or the
// initramfs agent's) and returns its device.
func WaitLabel(label string, timeout time.Duration) (string, error) {
	link := filepath.Join(host.System.ByLabel, label)
	deadline := time.Now().Add(timeout)
	for {
		if dev, err := filepath.EvalSymlinks(link); err == nil {
			// An opened encrypted partition is mounted as
			// /dev/mapper/<name>, as mount(8) would record it.
			return blockdev.Of(host.System).MapperPath(dev), nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no file system labeled %s after %s (is this the right disk?)", label, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mounted(dir string) bool {
	table, err := mounttab.Read(mounttab.Path)
	if err != nil {
		return false
	}
	for _, m := range table {
		if m.Target == dir {
			return true
		}
	}
	return false
}

func run(log io.Writer, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	if len(out) > 0 {
		log.Write(out)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
