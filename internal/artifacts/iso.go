package artifacts

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/fat"
	"github.com/kairos-io/kairos/internal/diskfmt/iso9660"
	"github.com/kairos-io/kairos/internal/disklayout"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/overlay"
)

// Live ISO contract: volume label, where the finalize step leaves the boot
// assets made from the image's own grub, and the ISO's layout.
const (
	isoVolumeID = "COS_LIVE"
	bootAssets  = disklayout.BootAssets
	isoESPPath  = "boot/uefi.img"
	isoBIOSPath = "boot/grub/eltorito.img"
	// isoCloudConfig is read by the live system's stages
	// (/run/initramfs/live/config.yaml).
	isoCloudConfig = "config.yaml"
)

// iso writes the hybrid live ISO: a CD and a USB disk, BIOS and UEFI.
func (w *run) iso() error {
	final := filepath.Join(w.dir, w.name+".iso")
	epoch := w.epoch()
	mtime := epoch.Unix()

	efi, grubPrefix, err := w.efiLoader()
	if err != nil {
		return err
	}
	kernel, err := fstree.ReadFile(w.root, kernelPath)
	if err != nil {
		return fmt.Errorf("the image has no kernel: %w", err)
	}
	initrd, err := fstree.ReadFile(w.root, initrdPath)
	if err != nil {
		return fmt.Errorf("the image has no initrd: %w", err)
	}
	menus, err := overlay.Tree("iso")
	if err != nil {
		return err
	}

	sq, err := w.rootfsSquashfs()
	if err != nil {
		return err
	}
	sqFile, err := hostFile(sq, mtime)
	if err != nil {
		return err
	}

	root := fstree.Dir(0o755, mtime)
	add := func(p string, data []byte) error {
		return root.Add(p, fstree.File(data, 0o644, mtime), 0o755, mtime)
	}
	if err := root.Add("rootfs.squashfs", sqFile, 0o755, mtime); err != nil {
		return err
	}
	if err := add("boot/kernel", kernel); err != nil {
		return err
	}
	if err := add("boot/initrd", initrd); err != nil {
		return err
	}
	// GRUB looks for its config next to itself: for UEFI that is the ESP
	// or the ISO file system depending on the firmware, so both carry it;
	// a signed GRUB looks in its own directory first (grubPrefix).
	esp := fstree.Dir(0o755, mtime)
	espSize := int64(2 << 20)
	for _, m := range menus {
		if err := add(m.Path, m.Data); err != nil {
			return err
		}
		if m.Path != "EFI/BOOT/grub.cfg" {
			continue
		}
		paths := []string{m.Path}
		if grubPrefix != "" {
			paths = append(paths, grubPrefix+"/grub.cfg")
			if err := add(grubPrefix+"/grub.cfg", m.Data); err != nil {
				return err
			}
		}
		for _, p := range paths {
			if err := esp.Add(p, fstree.File(m.Data, 0o644, mtime), 0o755, mtime); err != nil {
				return err
			}
		}
	}
	for _, f := range efi {
		if err := esp.Add("EFI/BOOT/"+f.Name, fstree.File(f.Data, 0o644, mtime), 0o755, mtime); err != nil {
			return err
		}
		espSize += int64(len(f.Data))
	}
	if len(w.p.CloudConfig) > 0 {
		if err := add(isoCloudConfig, w.p.CloudConfig); err != nil {
			return err
		}
	}

	w.say("EFI system partition (%s)", efiNames(efi))
	espFile, err := w.tempFile(".esp")
	if err != nil {
		return err
	}
	// The loaders plus 1 MiB of room, rounded to MiB; FAT16 needs 4 MiB.
	espSize = max(int64(4<<20), espSize&^(1<<20-1))
	if err := writeFAT(espFile, espSize, esp, epoch); err != nil {
		return fmt.Errorf("EFI system partition: %w", err)
	}
	espNode, err := hostFile(espFile, mtime)
	if err != nil {
		return err
	}
	if err := root.Add(isoESPPath, espNode, 0o755, mtime); err != nil {
		return err
	}

	img := &iso9660.Image{
		VolumeID:    isoVolumeID,
		ModTime:     epoch,
		Root:        root,
		Joliet:      true,
		CatalogPath: "boot.catalog",
		EFIBoot:     &iso9660.EFIBoot{Path: isoESPPath, Partition: true},
	}
	// BIOS boot exists where the architecture has it (the finalize step
	// made the El Torito image).
	if eltorito, err := fstree.ReadFile(w.root, bootAssets+"/eltorito.img"); err == nil {
		mbr, err := fstree.ReadFile(w.root, bootAssets+"/boot_hybrid.img")
		if err != nil {
			return fmt.Errorf("the image has eltorito.img but no boot_hybrid.img in %s", bootAssets)
		}
		if err := add(isoBIOSPath, eltorito); err != nil {
			return err
		}
		img.BIOSBoot = &iso9660.BIOSBoot{Path: isoBIOSPath, BootInfoTable: true, GRUB2BootInfo: true, MBRCode: mbr}
	}
	w.say("iso9660 (hybrid: CD and USB, %s)", map[bool]string{true: "BIOS and UEFI", false: "UEFI"}[img.BIOSBoot != nil])
	return w.write(final, func(partial string) error { return iso9660.WriteFile(partial, img) })
}

// efiNames lists the EFI/BOOT files, for progress lines.
func efiNames(files []disklayout.EFIFile) string {
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

// hostFile is the file at p as an 0644 file of the tree, read when written.
func hostFile(p string, mtime int64) (*fstree.Node, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return &fstree.Node{Mode: 0o644, ModTime: mtime, Size: st.Size(), Open: func() (io.ReadCloser, error) { return os.Open(p) }}, nil
}

func writeFAT(path string, size int64, root *fstree.Node, epoch time.Time) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	// The writer leaves free clusters unwritten: the file must have the
	// file system's full size, or firmware sees a volume larger than its
	// partition.
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := fat.Write(f, size, "COS_GRUB", root, fat.Options{ModTime: epoch}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rootfsSquashfs is the root file system image the ISO carries: the
// recovery/netboot artifact when one is asked for, else a temporary file.
func (w *run) rootfsSquashfs() (string, error) {
	for _, k := range w.p.Kinds {
		if k == KindRecovery || k == KindNetboot {
			if err := w.squashfs(); err != nil {
				return "", err
			}
			return filepath.Join(w.dir, w.name+".squashfs"), nil
		}
	}
	if w.tmpSquashfs != "" {
		return w.tmpSquashfs, nil
	}
	p, err := w.tempFile(".squashfs")
	if err != nil {
		return "", err
	}
	if err := w.writeSquashfs(p); err != nil {
		return "", err
	}
	w.tmpSquashfs = p
	return p, nil
}

// tempFile is a hidden file in the output directory, removed when Run ends.
func (w *run) tempFile(suffix string) (string, error) {
	f, err := os.CreateTemp(w.dir, "."+w.name+"-*"+suffix)
	if err != nil {
		return "", err
	}
	f.Close()
	w.temps = append(w.temps, f.Name())
	return f.Name(), nil
}
