package artifacts

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/ext4"
	"github.com/kairos-io/kairos/internal/diskfmt/qcow2"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/fstree"
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
	boot, err := disklayout.ReadBoot(func(p string) ([]byte, error) { return fstree.ReadFile(w.root, p) })
	if err != nil {
		return err
	}
	for _, p := range []string{kernelPath, initrdPath} {
		if _, err := fstree.ReadFile(w.root, p); err != nil {
			return fmt.Errorf("the image has no %s: %w", p, err)
		}
	}

	rootfs, err := ext4.RequiredSize(w.root, ext4.Options{Label: disklayout.LabelActive})
	if err != nil {
		return fmt.Errorf("sizing active.img: %w", err)
	}
	imgSize := disklayout.ImageSize(rootfs)
	files, err := boot.Files(nil, w.p.CloudConfig)
	if err != nil {
		return err
	}
	// The ext4 partitions' trees: the layout's files and the images, the
	// same tree with their own labels, each spooled then copied in.
	// Directories on the way are root-owned, 0755.
	mtime := epoch.Unix()
	trees := map[string]*fstree.Node{}
	add := func(part, path string, n *fstree.Node) error {
		if trees[part] == nil {
			trees[part] = fstree.Dir(0o755, mtime)
		}
		return trees[part].Add(path, n, 0o755, mtime)
	}
	for _, f := range files {
		if f.Part != disklayout.PartEFI {
			if err := add(f.Part, f.Path, fstree.File(f.Data, f.Mode, mtime)); err != nil {
				return err
			}
		}
	}
	images := map[string]string{}
	for _, img := range disklayout.Images {
		tmp, err := w.tempFile("." + img.File)
		if err != nil {
			return err
		}
		images[img.File] = tmp
		open := func() (io.ReadCloser, error) { return os.Open(tmp) } // when written
		if err := add(img.Part, disklayout.ImageDir+"/"+img.File, &fstree.Node{Mode: 0o644, ModTime: mtime, Size: imgSize, Open: open}); err != nil {
			return err
		}
	}

	// The file systems must hold their trees: planned with these sizes,
	// so a disk too small fails before anything is written.
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
			err = disklayout.WriteESP(io.NewOffsetWriter(f, p.Start), &p, files, epoch)
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

// efiLoader is what the image boots UEFI machines with (disklayout.EFILoader).
func (w *run) efiLoader() ([]disklayout.EFIFile, string, error) {
	return disklayout.EFILoader(func(p string) ([]byte, error) { return fstree.ReadFile(w.root, p) })
}
