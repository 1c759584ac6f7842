// Package blockdev is the agent's view of a node's block devices through
// its /sys, /dev and mount table: whole disks, their partitions, what is
// mounted, and the ioctls that tell the kernel about a changed partition
// table. The installer and the layout step share it.
package blockdev

import (
	"errors"
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
	"github.com/kairos-io/kairos/internal/mounttab"
)

// Devices is a host's block devices: its /sys, /dev and mount table.
type Devices struct {
	Sys, Dev, Mounts string
}

// Of is h's view of its block devices.
func Of(h *host.Host) Devices {
	return Devices{Sys: h.Sys, Dev: h.Dev, Mounts: h.Mounts}
}

// Disk is a whole block device.
type Disk struct {
	Name string // vda, nvme0n1
	Path string // /dev/vda
	Size int64
}

// Disk describes the block device at path (a whole disk, not a partition).
func (h Devices) Disk(path string) (Disk, error) {
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
	return readSectors(filepath.Join(h.Sys, "class/block", name, "size"))
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

// Parent is the whole disk of a block device name (itself when it is
// one).
func (h Devices) Parent(name string) string {
	if _, err := os.Stat(filepath.Join(h.Sys, "class/block", name, "partition")); err != nil {
		return name
	}
	link, err := filepath.EvalSymlinks(filepath.Join(h.Sys, "class/block", name))
	if err != nil {
		return name
	}
	return filepath.Base(filepath.Dir(link))
}

// MapperPath is the name users and tools know a device-mapper device by:
// /dev/mapper/<name> for /dev/dm-N (an opened LUKS2 container), which
// mount(8) would have recorded in the mount table and which mount(2)
// records as given. Other devices, and a dm device whose name or link is
// missing, are returned as they are.
func (h Devices) MapperPath(dev string) string {
	base := filepath.Base(dev)
	if !strings.HasPrefix(base, "dm-") {
		return dev
	}
	name, err := os.ReadFile(filepath.Join(h.Sys, "class/block", base, "dm/name"))
	if err != nil {
		return dev
	}
	n := strings.TrimSpace(string(name))
	// The name is the kernel's: still never a path of its own.
	if n == "" || n != filepath.Base(n) || n == "." || n == ".." {
		return dev
	}
	mapper := filepath.Join(h.Dev, "mapper", n)
	if _, err := os.Stat(mapper); err != nil {
		return dev
	}
	return mapper
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
		if h.Parent(filepath.Base(dev)) == d.Name {
			at = append(at, m.Target)
		}
	}
	return strings.Join(at, ", "), nil
}

// SourceOf is what is mounted at dir (the last mount there wins, as
// the kernel shows it): a device path, or a pseudo source like "overlay".
func (h Devices) SourceOf(dir string) (string, error) {
	table, err := mounttab.Read(h.Mounts)
	if err != nil {
		return "", err
	}
	src := ""
	for _, m := range table {
		if m.Target == dir {
			src = m.Source
		}
	}
	if src == "" {
		return "", fmt.Errorf("nothing is mounted at %s", dir)
	}
	return src, nil
}

// MountedAt is where the block device at dev is mounted ("" for
// nowhere): the first mount of it in the mount table.
func (h Devices) MountedAt(dev string) (string, error) {
	want, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", err
	}
	table, err := mounttab.Read(h.Mounts)
	if err != nil {
		return "", err
	}
	for _, m := range table {
		if !strings.HasPrefix(m.Source, "/dev/") {
			continue
		}
		if src, err := filepath.EvalSymlinks(m.Source); err == nil && src == want {
			return m.Target, nil
		}
	}
	return "", nil
}

// Resolve picks the target: the named disk, or for "auto"/"" the first
// disk not in use that can hold need bytes.
func (h Devices) Resolve(device string, need int64) (Disk, error) {
	if device != "" && device != "auto" {
		return h.Disk(device)
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

// PartitionPath is the device node of partition n of d once the kernel
// knows it (vda3, nvme0n1p3, loop0p3), waiting for udev to create it.
func (h Devices) PartitionPath(d Disk, n int, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		if dir := h.partitionDir(d, n); dir != "" {
			p := filepath.Join(h.Dev, filepath.Base(dir))
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("partition %d of %s did not appear within %s", n, d.Path, wait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// partitionDir is the /sys directory of partition n of d as the kernel
// has it, "" when it has none.
func (h Devices) partitionDir(d Disk, n int) string {
	matches, _ := filepath.Glob(filepath.Join(h.Sys, "class/block", d.Name, d.Name+"*", "partition"))
	for _, m := range matches {
		if data, err := os.ReadFile(m); err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(n) {
			return filepath.Dir(m)
		}
	}
	return ""
}

// Sync makes the kernel's partitions of d what parts says: the table is
// re-read (BLKRRPART) when no partition is in use, then each partition the
// kernel lacks is added and each of another size resized with BLKPG, as
// partx -u does. That covers kernels and loop devices that do not parse
// GPT, and disks with mounted partitions (where BLKRRPART fails).
func (h Devices) Sync(f *os.File, d Disk, parts []Extent) error {
	_ = Reread(f) // EBUSY while in use: the BLKPG calls below do it
	for _, p := range parts {
		start, size, ok := h.kernelPartition(d, p.Number)
		var err error
		switch {
		case !ok:
			// The kernel has no partition n: EBUSY here is an overlap
			// with one it has, an error (AddPartition would let it pass).
			err = blkpgStrict(f, unix.BLKPG_ADD_PARTITION, p, "adding")
		case start != p.Start:
			err = fmt.Errorf("partition %d of %s starts at byte %d in the kernel, %d in the table: reboot to use the new table", p.Number, d.Path, start, p.Start)
		case size != p.Size:
			err = ResizePartition(f, p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// kernelPartition is where the kernel has partition n of d, in bytes.
func (h Devices) kernelPartition(d Disk, n int) (start, size int64, ok bool) {
	dir := h.partitionDir(d, n)
	if dir == "" {
		return 0, 0, false
	}
	st, err1 := readSectors(filepath.Join(dir, "start"))
	sz, err2 := readSectors(filepath.Join(dir, "size"))
	return st, sz, err1 == nil && err2 == nil
}

func readSectors(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n * 512, err
}

// Extent is a partition as the kernel's BLKPG ioctl takes it.
type Extent struct {
	Number      int   // partition number, from 1
	Start, Size int64 // bytes
}

// Reread makes the kernel parse the disk's partition table again
// (BLKRRPART). It fails with EBUSY while a partition of the disk is in use;
// AddPartition and ResizePartition then change one entry at a time.
func Reread(f *os.File) error {
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKRRPART, 0); err != nil {
		return fmt.Errorf("re-reading the partition table of %s: %w", f.Name(), err)
	}
	return nil
}

// AddPartition tells the kernel about a new partition, as partx(8) -a
// does. A partition the kernel already has (EBUSY) is not an error.
func AddPartition(f *os.File, e Extent) error {
	return blkpg(f, unix.BLKPG_ADD_PARTITION, e, "adding")
}

// ResizePartition tells the kernel a partition's new size; its start must
// not have changed. Works while the partition is mounted.
func ResizePartition(f *os.File, e Extent) error {
	return blkpg(f, unix.BLKPG_RESIZE_PARTITION, e, "resizing")
}

func blkpgStrict(f *os.File, op int32, e Extent, what string) error {
	bp := unix.BlkpgPartition{Start: e.Start, Length: e.Size, Pno: int32(e.Number)}
	arg := unix.BlkpgIoctlArg{Op: op, Datalen: int32(unsafe.Sizeof(bp)), Data: (*byte)(unsafe.Pointer(&bp))}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKPG, uintptr(unsafe.Pointer(&arg))); errno != 0 {
		return fmt.Errorf("%s partition %d of %s in the kernel: %w", what, e.Number, f.Name(), errno)
	}
	return nil
}

func blkpg(f *os.File, op int32, e Extent, what string) error {
	err := blkpgStrict(f, op, e, what)
	if op == unix.BLKPG_ADD_PARTITION && errors.Is(err, unix.EBUSY) {
		return nil
	}
	return err
}
