package earlyboot

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// apiMounts are the kernel file systems the initramfs mounts and the
// booted system takes over, moved below the new root at switch-root.
var apiMounts = []struct{ source, target, fstype, options string }{
	{"proc", "/proc", "proc", "nosuid,nodev,noexec"},
	{"sysfs", "/sys", "sysfs", "nosuid,nodev,noexec"},
	{"devtmpfs", "/dev", "devtmpfs", "mode=0755,nosuid"},
	// systemd's own /run: a live root's upper layer lives in it.
	{"tmpfs", "/run", "tmpfs", "mode=0755,nosuid,nodev,size=20%,nr_inodes=800k"},
}

// SwitchRoot makes newRoot the root and runs init there as PID 1, as
// switch_root(8) does: the kernel file systems move below it, the
// initramfs's files are deleted (they would hold their memory for the
// whole uptime), newRoot is moved on / and init is executed. It returns
// only on failure.
func SwitchRoot(newRoot, init string, argv []string) error {
	for _, m := range apiMounts {
		if err := unix.Mount(m.target, filepath.Join(newRoot, m.target), "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s to %s: %w", m.target, newRoot, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return err
	}
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return err
	}
	deleteContents("/", root.Dev)
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s on /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	return unix.Exec(init, argv, os.Environ())
}

// deleteContents removes dir's files and directories on the device dev,
// leaving other file systems (the new root, anything mounted) alone.
func deleteContents(dir string, dev uint64) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Dev != dev {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			deleteContents(p, dev)
			unix.Rmdir(p)
			continue
		}
		unix.Unlink(p)
	}
}
