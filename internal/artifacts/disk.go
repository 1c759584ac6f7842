package artifacts

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4"
	"github.com/kairos-io/kairos/internal/diskfmt/fat"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/diskfmt/qcow2"
	"github.com/kairos-io/kairos/internal/diskfmt/squashfs"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/grubenv"
)

// The disk image is the installed disk of the contract, planned by
// disklayout exactly as the agent's installer plans a node's disk.

// raw writes <name>.raw once per run.
func (w *run) raw() error {
	final := filepath.Join(w.dir, w.name+".raw")
	if w.rawPath != "" {
		return nil
	}
	if err := w.writeDisk(final); err != nil {
		return err
	}
	w.rawPath = final
	return nil
}

// qcow2 writes <name>.qcow2 from the raw disk (the artifact when asked
// for, else a temporary one).
func (w *run) qcow2() error {
	src := w.rawPath
	if src == "" {
		tmp, err := w.tempFile(".raw")
		if err != nil {
			return err
		}
		if err := w.buildDisk(tmp); err != nil {
			return err
		}
		src = tmp
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.say("qcow2 of the %d MiB disk", st.Size()>>20)
	return w.write(filepath.Join(w.dir, w.name+".qcow2"), func(partial string) error {
		out, err := os.Create(partial)
		if err != nil {
			return err
		}
		if err := qcow2.Convert(out, f, st.Size(), qcow2.Options{}); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

func (w *run) writeDisk(final string) error {
	return w.write(final, w.buildDisk)
}

// buildDisk plans the whole disk, refuses a disk size that cannot hold it
// before writing anything there, then writes the GPT and every file system
// into a sparse file at path.
func (w *run) buildDisk(path string) error {
	start := time.Now()
	epoch := w.epoch()
	boot, err := disklayout.ReadBoot(func(p string) ([]byte, error) { return squashfs.ReadFile(w.root, p) })
	if err != nil {
		return err
	}
	for _, p := range []string{kernelPath, initrdPath} {
		if _, err := squashfs.ReadFile(w.root, p); err != nil {
			return fmt.Errorf("the image has no %s: %w", p, err)
		}
	}

	rootfs, err := ext4.RequiredSize(w.root, ext4.Options{Label: disklayout.LabelActive})
	if err != nil {
		return fmt.Errorf("sizing active.img: %w", err)
	}
	imgSize := disklayout.ImageSize(rootfs)
	env := func(vars map[string]string) *squashfs.Node {
		data, err := grubenv.Encode(vars)
		if err != nil {
			panic(err) // fixed variables: cannot fail
		}
		return fileNode("", data, 0o644, epoch)
	}
	oem := dirNode(epoch, map[string]*squashfs.Node{disklayout.OEMEnv: env(nil)})
	if len(w.p.CloudConfig) > 0 {
		// Where the installer puts the user's config: read at every boot.
		oem.Children = append(oem.Children, fileNode(disklayout.CustomConfig, w.p.CloudConfig, 0o600, epoch))
	}
	// The images are the same tree with their own labels; each is spooled,
	// then copied into its partition's file system.
	images := map[string]string{}
	for _, img := range disklayout.Images {
		tmp, err := w.tempFile("." + img.File)
		if err != nil {
			return err
		}
		images[img.File] = tmp
	}
	recoveryTree := dirNode(epoch, map[string]*squashfs.Node{
		disklayout.ImageDir: dirNode(epoch, map[string]*squashfs.Node{disklayout.Recovery.File: hostFileNode(images[disklayout.Recovery.File], imgSize, epoch)}),
	})
	stateTree := dirNode(epoch, map[string]*squashfs.Node{
		disklayout.ImageDir: dirNode(epoch, map[string]*squashfs.Node{
			disklayout.Active.File:  hostFileNode(images[disklayout.Active.File], imgSize, epoch),
			disklayout.Passive.File: hostFileNode(images[disklayout.Passive.File], imgSize, epoch),
		}),
		"grub2":                   dirNode(epoch, map[string]*squashfs.Node{"grub.cfg": fileNode("", boot.StateMenu, 0o644, epoch)}),
		disklayout.StateOEMEnv:    env(nil),
		disklayout.BootAssessment: env(nil),
	})
	esp, err := boot.ESP()
	if err != nil {
		return err
	}

	// The file systems must hold their trees: planned with these sizes,
	// so a disk too small fails before anything is written.
	trees := map[string]*squashfs.Node{disklayout.PartOEM: oem, disklayout.PartRecovery: recoveryTree, disklayout.PartState: stateTree}
	labels := map[string]string{disklayout.PartOEM: disklayout.LabelOEM, disklayout.PartRecovery: disklayout.LabelRecovery, disklayout.PartState: disklayout.LabelState, disklayout.PartPersistent: disklayout.LabelPersistent}
	min := disklayout.Sizes{}
	for name, tree := range trees {
		need, err := ext4.RequiredSize(tree, ext4.Options{Label: labels[name], Journal: true})
		if err != nil {
			return fmt.Errorf("sizing %s: %w", labels[name], err)
		}
		min[name] = need
	}
	layout, err := disklayout.Plan(disklayout.Input{ImageSize: imgSize, DiskSize: w.p.DiskSize, Min: min, BIOS: boot.BIOS != nil})
	if err != nil {
		return err
	}
	if boot.BIOS != nil {
		layout.Table.BootCode = boot.BIOS.PatchedBoot(layout.Part(disklayout.PartBIOS).Start)
	}

	// Everything fits: now the images, then the disk.
	for _, img := range disklayout.Images {
		w.say("%s (%s, %d MiB ext4)", img.File, img.Label, imgSize>>20)
		if _, err := ext4.WriteFile(images[img.File], w.root, ext4.Options{Label: img.Label, Size: imgSize, ModTime: epoch, Progress: w.progress(img.File)}); err != nil {
			return fmt.Errorf("%s: %w", img.File, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	// A sparse file of the disk's size: free space is never written.
	if err := f.Truncate(layout.DiskSize); err != nil {
		return err
	}
	if err := layout.Table.Write(f, layout.DiskSize); err != nil {
		return fmt.Errorf("partition table: %w", err)
	}
	for i, p := range layout.Parts {
		w.say("partition %d %s (%s, %d MiB)", i+1, p.Name, p.Label, p.Size>>20)
		var err error
		switch p.Name {
		case disklayout.PartEFI:
			err = fat.Write(io.NewOffsetWriter(f, p.Start), p.Size, p.Label, esp, fat.Options{ModTime: epoch, HiddenSectors: uint32(p.Start / gpt.SectorSize)})
		case disklayout.PartBIOS:
			_, err = f.WriteAt(boot.BIOS.PatchedCore(p.Start), p.Start)
		default:
			_, err = ext4.Write(io.NewOffsetWriter(f, p.Start), trees[p.Name], ext4.Options{Label: p.Label, Size: p.Size, ModTime: epoch, Journal: true, Progress: w.progress(p.Label)})
		}
		if err != nil {
			return fmt.Errorf("partition %s (%s): %w", p.Name, p.Label, err)
		}
	}
	w.say("disk: %d MiB in %s", layout.DiskSize>>20, time.Since(start).Round(time.Second))
	return f.Close()
}

func (w *run) epoch() time.Time {
	if w.p.Epoch.IsZero() {
		return time.Unix(0, 0)
	}
	return w.p.Epoch
}

// efiLoader is the image's removable-media UEFI loader.
func (w *run) efiLoader() (string, []byte, error) {
	return disklayout.EFILoader(func(p string) ([]byte, error) { return squashfs.ReadFile(w.root, p) })
}

// dirNode is a root-owned directory of generated content.
func dirNode(epoch time.Time, children map[string]*squashfs.Node) *squashfs.Node {
	d := &squashfs.Node{Mode: os.ModeDir | 0o755, ModTime: epoch.Unix()}
	for name, c := range children {
		c.Name = name
		d.Children = append(d.Children, c)
	}
	return d
}

func fileNode(name string, data []byte, perm os.FileMode, epoch time.Time) *squashfs.Node {
	return &squashfs.Node{Name: name, Mode: perm, ModTime: epoch.Unix(), Size: int64(len(data)), Open: squashfs.BytesOpener(data)}
}

// hostFileNode is a file of the host (a spooled image), read when written.
func hostFileNode(path string, size int64, epoch time.Time) *squashfs.Node {
	return &squashfs.Node{Mode: 0o644, ModTime: epoch.Unix(), Size: size, Open: func() (io.ReadCloser, error) { return os.Open(path) }}
}
