package repart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

// Repart changes the partitions of a host's disks.
type Repart struct {
	Devices blockdev.Devices
	// ByLabel and ByPartLabel are udev's /dev/disk/by-label and
	// by-partlabel: how a layout's device.label is found.
	ByLabel, ByPartLabel string
	// Run runs one of the node's tools; nil runs it (its output in the
	// error).
	Run func(name string, args ...string) error
	// LookPath finds a tool; nil is exec.LookPath.
	LookPath func(name string) (string, error)
	// Log gets one line per change; nil discards.
	Log io.Writer
	// Wait bounds the wait for a new partition's device node.
	Wait time.Duration
}

// New is the Repart of a host.
func New(h *host.Host) *Repart {
	return &Repart{
		Devices: blockdev.Of(h), ByLabel: h.ByLabel,
		ByPartLabel: filepath.Join(filepath.Dir(h.ByLabel), "by-partlabel"),
	}
}

// Apply carries out a layout step. The checks come first (disk, table,
// plan, that the file system to grow can be grown): a step that cannot be
// done fails with nothing written.
func (r *Repart) Apply(l cloudconfig.Layout) error {
	d, err := r.find(l.Device)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(d.Path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	// An exclusive lock on the whole disk keeps udev from probing it while
	// the table changes (udev's documented protocol).
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", d.Path, err)
	}
	table, err := gpt.Read(f, d.Size)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	disk := Disk{Disk: table, Size: d.Size, FSLabels: r.labels(d, len(table.Partitions)), FSBytes: make([]int64, len(table.Partitions))}
	if last := lastPartition(table.Partitions); last >= 0 && l.Expand != nil {
		// The file system of the last partition, to find one a grow left
		// smaller than its partition (an interrupted boot).
		if dev, err := r.Devices.PartitionPath(d, last+1, r.wait()); err == nil {
			disk.FSBytes[last], _ = fsSize(dev)
		}
	}
	c, err := Plan(disk, l)
	if err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	if c.Empty() {
		r.logf("layout of %s: nothing to change", d.Path)
		return nil
	}

	// Everything that can be checked before a write is: the commands the
	// file systems need are there.
	var grow []command
	if c.GrowFS >= 0 {
		dev, err := r.Devices.PartitionPath(d, c.GrowFS+1, r.wait())
		if err != nil {
			return err
		}
		if grow, err = r.growCommands(dev); err != nil {
			return err
		}
	}
	for _, a := range c.Add {
		mkfs := fileSystems[a.FileSystem].mkfs("", "")
		if err := r.lookPath(mkfs[0]); err != nil {
			return fmt.Errorf("%s: %w: nothing was changed", a.FSLabel, err)
		}
	}
	for _, cmd := range grow {
		if err := r.lookPath(cmd.args[0]); err != nil {
			return fmt.Errorf("%w: nothing was changed", err)
		}
	}

	if c.WriteTable {
		if err := c.Table.Write(syncWriter{f}, d.Size); err != nil {
			return fmt.Errorf("writing the partition table of %s: %w", d.Path, err)
		}
		if err := r.announce(f, d, c); err != nil {
			return err
		}
	}
	if g := c.Grow; g != nil {
		p := c.Table.Partitions[g.Index]
		r.logf("layout of %s: partition %d (%s) grown from %d to %d MiB", d.Path, g.Index+1, p.Name, g.OldSize/mib, g.Size/mib)
	}
	for _, cmd := range grow {
		if err := r.runCommand(cmd); err != nil {
			return fmt.Errorf("growing the file system of partition %d: %w", c.GrowFS+1, err)
		}
	}
	for _, a := range c.Add {
		p := c.Table.Partitions[a.Index]
		dev, err := r.Devices.PartitionPath(d, a.Index+1, r.wait())
		if err != nil {
			return err
		}
		if err := r.run(fileSystems[a.FileSystem].mkfs(dev, a.FSLabel)); err != nil {
			return fmt.Errorf("partition %d (%s): %w", a.Index+1, p.Name, err)
		}
		r.logf("layout of %s: partition %d (%s, %d MiB) added with %s %q", d.Path, a.Index+1, p.Name, p.Size/mib, a.FileSystem, a.FSLabel)
	}
	return nil
}

// syncWriter makes gpt's Write flush each structure before the next: the
// backup, then the primary, then the MBR reach the disk in that order.
type syncWriter struct{ f *os.File }

func (w syncWriter) WriteAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }
func (w syncWriter) Sync() error                              { return w.f.Sync() }

// growCommands are the commands that grow the file system on dev to its
// partition; none for a partition without a file system.
func (r *Repart) growCommands(dev string) ([]command, error) {
	fs, err := probe(dev)
	if err != nil {
		return nil, err
	}
	if fs == "" {
		return nil, nil
	}
	at, err := r.Devices.MountedAt(dev)
	if err != nil {
		return nil, err
	}
	t := fileSystems[fs]
	grow := t.growOffline
	if at != "" {
		grow = t.growOnline
	}
	if grow == nil {
		how := "unmounted"
		if at != "" {
			how = "mounted at " + at
		}
		return nil, fmt.Errorf("%s holds %s, which this agent does not grow %s: nothing was changed", dev, fs, how)
	}
	return grow(dev), nil
}

// announce makes the kernel see the new table.
func (r *Repart) announce(f *os.File, d blockdev.Disk, c Change) error {
	var parts []blockdev.Extent
	for i, p := range c.Table.Partitions {
		parts = append(parts, blockdev.Extent{Number: i + 1, Start: p.Start, Size: p.Size})
	}
	return r.Devices.Sync(f, d, parts)
}

// find is the disk a layout names: the one holding the partition whose
// file system label (first) or partition label is device.label, or the
// whole disk at device.path.
func (r *Repart) find(dev *cloudconfig.LayoutDevice) (blockdev.Disk, error) {
	switch {
	case dev == nil || (dev.Label == "" && dev.Path == ""):
		return blockdev.Disk{}, errors.New("layout: device needs a label or a path")
	case dev.Label != "":
		if strings.ContainsAny(dev.Label, "/\x00") || dev.Label == "." || dev.Label == ".." {
			return blockdev.Disk{}, fmt.Errorf("layout: device label %q is not a label", dev.Label)
		}
		for _, dir := range []string{r.ByLabel, r.ByPartLabel} {
			part, err := filepath.EvalSymlinks(filepath.Join(dir, udevEscape(dev.Label)))
			if err != nil {
				continue
			}
			part = r.underlying(part)
			return r.Devices.Disk(filepath.Join(r.Devices.Dev, r.Devices.Parent(filepath.Base(part))))
		}
		return blockdev.Disk{}, fmt.Errorf("layout: no file system or partition labeled %q", dev.Label)
	}
	return r.Devices.Disk(dev.Path)
}

// underlying is the partition below an opened encrypted one (a dm-crypt
// device has its partition as its one slave); part itself otherwise.
func (r *Repart) underlying(part string) string {
	slaves, err := os.ReadDir(filepath.Join(r.Devices.Sys, "class/block", filepath.Base(part), "slaves"))
	if err != nil || len(slaves) != 1 {
		return part
	}
	return filepath.Join(r.Devices.Dev, slaves[0].Name())
}

// labels are the file system labels of the disk's partitions, by index,
// as udev names them.
func (r *Repart) labels(d blockdev.Disk, n int) []string {
	labels := make([]string, n)
	entries, _ := os.ReadDir(r.ByLabel)
	for _, e := range entries {
		part, err := filepath.EvalSymlinks(filepath.Join(r.ByLabel, e.Name()))
		if err == nil {
			part = r.underlying(part)
		}
		if err != nil || r.Devices.Parent(filepath.Base(part)) != d.Name {
			continue
		}
		num, err := os.ReadFile(filepath.Join(r.Devices.Sys, "class/block", filepath.Base(part), "partition"))
		if err != nil {
			continue
		}
		if i, err := strconv.Atoi(strings.TrimSpace(string(num))); err == nil && i >= 1 && i <= n {
			labels[i-1] = udevUnescape(e.Name())
		}
	}
	return labels
}

func (r *Repart) run(args []string) error { return r.runCommand(command{args: args}) }

func (r *Repart) runCommand(c command) error {
	r.logf("running %s", strings.Join(c.args, " "))
	if r.Run != nil {
		return r.Run(c.args[0], c.args[1:]...)
	}
	out, err := exec.Command(c.args[0], c.args[1:]...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && slices.Contains(c.okExit, exit.ExitCode()) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(c.args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (r *Repart) lookPath(name string) error {
	look := r.LookPath
	if look == nil {
		look = exec.LookPath
	}
	if _, err := look(name); err != nil {
		return fmt.Errorf("%s is not on this system (the initramfs carries it when the image has it)", name)
	}
	return nil
}

func (r *Repart) wait() time.Duration {
	if r.Wait > 0 {
		return r.Wait
	}
	return 10 * time.Second
}

func (r *Repart) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

// udevEscape and udevUnescape are udev's encoding of names in
// /dev/disk/by-*: bytes outside [0-9A-Za-z#+-.:=@_] as \xNN.
func udevEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte("#+-.:=@_", c) >= 0 || c >= 0x80 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

func udevUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Grow is cloud-init's growpart for one device: a mount point stands for
// the device mounted there. The partition grows into the space after it
// when it is the last one of its disk (the only one that can have any);
// a device that is not a partition (Kairos's / is a loop-mounted image)
// or not the last one has nothing to grow, which is said, not an error.
func (r *Repart) Grow(device string) error {
	dev := device
	if !strings.HasPrefix(device, "/dev/") {
		src, err := r.Devices.SourceOf(device)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(src, "/dev/") {
			r.logf("growpart: %s is %s, not a partition: nothing to grow", device, src)
			return nil
		}
		dev = src
	}
	part, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return err
	}
	name := filepath.Base(part)
	num, err := os.ReadFile(filepath.Join(r.Devices.Sys, "class/block", name, "partition"))
	if err != nil {
		r.logf("growpart: %s (%s) is not a partition: nothing to grow", device, part)
		return nil
	}
	d, err := r.Devices.Disk(filepath.Join(r.Devices.Dev, r.Devices.Parent(name)))
	if err != nil {
		return err
	}
	f, err := os.Open(d.Path)
	if err != nil {
		return err
	}
	table, err := gpt.Read(f, d.Size)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", d.Path, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(num)))
	if last := lastPartition(table.Partitions); last+1 != n {
		r.logf("growpart: %s is partition %d of %s, not the last: nothing to grow", device, n, d.Path)
		return nil
	}
	return r.Apply(cloudconfig.Layout{Device: &cloudconfig.LayoutDevice{Path: d.Path}, Expand: &cloudconfig.Expand{}})
}
