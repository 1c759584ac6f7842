package install

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/mounttab"
)

// Devices is the installer's view of a host's block devices: its /sys,
// /dev and mount table.
type Devices struct {
	Sys, Dev, Mounts string
}

// DevicesOf is h's view of its block devices.
func DevicesOf(h *host.Host) Devices {
	return Devices{Sys: h.Sys, Dev: h.Dev, Mounts: h.Mounts}
}

// Disk is a whole block device.
type Disk struct {
	Name string // vda, nvme0n1
	Path string // /dev/vda
	Size int64
}

// disk describes the block device at path (a whole disk, not a partition).
func (h Devices) disk(path string) (Disk, error) {
	resolved, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Disk{}, fmt.Errorf("device %s: %w", path, err)
	}
	st, err := os.Stat(resolved)
	if err != nil {
		return Disk{}, fmt.Errorf("device %s: %w", path, err)
	}
	if st.Mode()&os.ModeDevice == 0 || st.Mode()&os.ModeCharDevice != 0 {
		return Disk{}, fmt.Errorf("device %s is not a block device", path)
	}
	name := filepath.Base(resolved)
	if _, err := os.Stat(filepath.Join(h.Sys, "class/block", name, "partition")); err == nil {
		return Disk{}, fmt.Errorf("device %s is a partition: give the whole disk", path)
	}
	size, err := h.size(name)
	if err != nil {
		return Disk{}, fmt.Errorf("device %s: %w", path, err)
	}
	return Disk{Name: name, Path: resolved, Size: size}, nil
}

func (h Devices) size(name string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(h.Sys, "class/block", name, "size"))
	if err != nil {
		return 0, err
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return 0, err
	}
	return sectors * 512, nil
}

// Disks lists the whole disks an install can target: no loop, RAM, CD-ROM
// or device-mapper devices, sorted by name.
func (h Devices) Disks() ([]Disk, error) {
	entries, err := os.ReadDir(filepath.Join(h.Sys, "block"))
	if err != nil {
		return nil, err
	}
	var out []Disk
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, "loop") || strings.HasPrefix(n, "ram") || strings.HasPrefix(n, "sr") ||
			strings.HasPrefix(n, "dm-") || strings.HasPrefix(n, "zram") || strings.HasPrefix(n, "md") {
			continue
		}
		size, err := h.size(n)
		if err != nil || size == 0 {
			continue
		}
		out = append(out, Disk{Name: n, Path: filepath.Join(h.Dev, n), Size: size})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// parentDisk is the whole disk of a block device name (itself when it is
// one).
func (h Devices) parentDisk(name string) string {
	if _, err := os.Stat(filepath.Join(h.Sys, "class/block", name, "partition")); err != nil {
		return name
	}
	link, err := filepath.EvalSymlinks(filepath.Join(h.Sys, "class/block", name))
	if err != nil {
		return name
	}
	return filepath.Base(filepath.Dir(link))
}

// InUse says where a disk's file systems are mounted ("" when nowhere), so
// the boot medium and mounted disks are never written.
func (h Devices) InUse(d Disk) (string, error) {
	table, err := mounttab.Read(h.Mounts)
	if err != nil {
		return "", err
	}
	var at []string
	for _, m := range table {
		if !strings.HasPrefix(m.Source, "/dev/") {
			continue
		}
		dev, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			continue
		}
		if h.parentDisk(filepath.Base(dev)) == d.Name {
			at = append(at, m.Target)
		}
	}
	return strings.Join(at, ", "), nil
}

// Resolve picks the target: the named disk, or for "auto"/"" the first
// disk not in use that can hold need bytes.
func (h Devices) Resolve(device string, need int64) (Disk, error) {
	if device != "" && device != "auto" {
		return h.disk(device)
	}
	disks, err := h.Disks()
	if err != nil {
		return Disk{}, err
	}
	var seen []string
	for _, d := range disks {
		if used, _ := h.InUse(d); used != "" {
			seen = append(seen, fmt.Sprintf("%s (in use: %s)", d.Path, used))
			continue
		}
		if d.Size < need {
			seen = append(seen, fmt.Sprintf("%s (%d MiB, too small)", d.Path, d.Size>>20))
			continue
		}
		return d, nil
	}
	return Disk{}, fmt.Errorf("no disk can take the install (%d MiB needed); disks seen: %s", need>>20, orNone(seen))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// partitionPath is the device node of partition n of d once the kernel
// knows it (vda3, nvme0n1p3, loop0p3), waiting for udev to create it.
func (h Devices) partitionPath(d Disk, n int, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		matches, _ := filepath.Glob(filepath.Join(h.Sys, "class/block", d.Name, d.Name+"*", "partition"))
		for _, m := range matches {
			data, err := os.ReadFile(m)
			if err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(n) {
				p := filepath.Join(h.Dev, filepath.Base(filepath.Dir(m)))
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("partition %d of %s did not appear within %s", n, d.Path, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// announcePartitions makes the kernel know the new table: BLKRRPART, and
// where the kernel does not parse it (kernels without GPT support, some
// loop devices) each partition added with BLKPG as partx(8) does.
func (h Devices) announcePartitions(f *os.File, d Disk, parts []disklayout.Part) error {
	fd := int(f.Fd())
	if err := unix.IoctlSetInt(fd, unix.BLKRRPART, 0); err != nil {
		return fmt.Errorf("re-reading the partition table: %w", err)
	}
	if _, err := h.partitionPath(d, 1, 2*time.Second); err == nil {
		return nil
	}
	for i, p := range parts {
		bp := unix.BlkpgPartition{Start: p.Start, Length: p.Size, Pno: int32(i + 1)}
		arg := unix.BlkpgIoctlArg{Op: unix.BLKPG_ADD_PARTITION, Datalen: int32(unsafe.Sizeof(bp)), Data: (*byte)(unsafe.Pointer(&bp))}
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 && errno != unix.EBUSY {
			return fmt.Errorf("adding partition %d (%s) to the kernel: %w", i+1, p.Name, errno)
		}
	}
	return nil
}
