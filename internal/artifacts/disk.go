package artifacts

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kairos-io/kairos/internal/artifacts/ext4"
	"github.com/kairos-io/kairos/internal/artifacts/fat"
	"github.com/kairos-io/kairos/internal/artifacts/gpt"
	"github.com/kairos-io/kairos/internal/artifacts/qcow2"
	"github.com/kairos-io/kairos/internal/artifacts/squashfs"
	"github.com/kairos-io/kairos/internal/grubenv"
)

// Installed-disk contract: partition names, file system labels and the
// files on them, as the agent's installer writes them, so a disk image
// boots the same way as an installed node.
const (
	labelGrub       = "COS_GRUB"
	labelOEM        = "COS_OEM"
	labelRecovery   = "COS_RECOVERY"
	labelState      = "COS_STATE"
	labelPersistent = "COS_PERSISTENT"
	labelActive     = "COS_ACTIVE"
	labelPassive    = "COS_PASSIVE"
	labelSystem     = "COS_SYSTEM"

	// The image's own boot menus (overlay/rootfs/etc/cos): the state
	// partition's menu and the ESP's first stage that finds it.
	stateGrubCfg = "/etc/cos/grub.cfg"
	espGrubCfg   = "/etc/cos/grub_efi.cfg"

	mib = int64(1) << 20
	gib = int64(1) << 30
)

// Partition sizes of the contract. The image size (active.img) is the root
// file system plus imageHeadroom; state holds active, passive and room for
// an upgrade's transition image plus stateSpare; recovery holds the
// recovery image and room for its upgrade plus recoverySpare.
const (
	espSize        = 64 * mib
	biosSize       = 1 * mib
	oemSize        = 64 * mib
	imageHeadroom  = 100 * mib
	stateSpare     = 1000 * mib
	recoverySpare  = 200 * mib
	persistentSize = 2 * gib // when no disk size is given
	minPersistent  = 64 * mib
	// gptReserve covers the 1 MiB before the first partition and the
	// backup GPT at the end.
	gptReserve = 2 * mib
)

// diskImages are the system images: active and passive on COS_STATE,
// recovery on COS_RECOVERY. All are ext4 with their own labels, which is
// how the initramfs finds the loop-mounted root (root=LABEL=...).
var diskImages = []struct{ file, label string }{{"active.img", labelActive}, {"passive.img", labelPassive}, {"recovery.img", labelSystem}}

// diskPart is one partition of the disk image: what the GPT says and how
// its file system is written.
type diskPart struct {
	name, label string
	typ         gpt.GUID
	size        int64
	write       func(w io.WriterAt, start, size int64) error
}

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
	efiName, efi, err := w.efiLoader()
	if err != nil {
		return err
	}
	menu, err := readFile(w.root, stateGrubCfg)
	if err != nil {
		return fmt.Errorf("the image has no %s (%v): it was not built by kairos", stateGrubCfg, err)
	}
	espMenu, err := readFile(w.root, espGrubCfg)
	if err != nil {
		return fmt.Errorf("the image has no %s (%v): it was not built by kairos", espGrubCfg, err)
	}
	for _, p := range []string{kernelPath, initrdPath} {
		if _, err := readFile(w.root, p); err != nil {
			return fmt.Errorf("the image has no %s: %w", p, err)
		}
	}

	imgSize, err := ext4.RequiredSize(w.root, ext4.Options{Label: labelActive})
	if err != nil {
		return fmt.Errorf("sizing active.img: %w", err)
	}
	imgSize = roundUp(imgSize+imageHeadroom, mib)
	env := func(vars map[string]string) *squashfs.Node {
		data, err := grubenv.Encode(vars)
		if err != nil {
			panic(err) // fixed variables: cannot fail
		}
		return fileNode("", data, 0o644, epoch)
	}
	oem := dirNode(epoch, map[string]*squashfs.Node{"grubenv": env(nil)})
	if len(w.p.CloudConfig) > 0 {
		// Where the installer puts the user's config: read at every boot.
		oem.Children = append(oem.Children, fileNode("90_custom.yaml", w.p.CloudConfig, 0o600, epoch))
	}
	// The images are the same tree with their own labels; each is spooled,
	// then copied into its partition's file system.
	images := map[string]string{}
	for _, img := range diskImages {
		tmp, err := w.tempFile("." + img.file)
		if err != nil {
			return err
		}
		images[img.file] = tmp
	}
	recoveryTree := dirNode(epoch, map[string]*squashfs.Node{
		"cOS": dirNode(epoch, map[string]*squashfs.Node{"recovery.img": hostFileNode(images["recovery.img"], imgSize, epoch)}),
	})
	stateTree := dirNode(epoch, map[string]*squashfs.Node{
		"cOS": dirNode(epoch, map[string]*squashfs.Node{
			"active.img":  hostFileNode(images["active.img"], imgSize, epoch),
			"passive.img": hostFileNode(images["passive.img"], imgSize, epoch),
		}),
		"grub2":           dirNode(epoch, map[string]*squashfs.Node{"grub.cfg": fileNode("", menu, 0o644, epoch)}),
		"grub_oem_env":    env(nil),
		"boot_assessment": env(nil),
	})

	esp := &fat.Dir{}
	if err := esp.AddFile("EFI/BOOT/"+efiName, efi); err != nil {
		return err
	}
	if err := esp.AddFile("EFI/BOOT/grub.cfg", espMenu); err != nil {
		return err
	}

	ext := func(label string, tree *squashfs.Node, journal bool) func(io.WriterAt, int64, int64) error {
		return func(f io.WriterAt, start, size int64) error {
			_, err := ext4.Write(io.NewOffsetWriter(f, start), tree, ext4.Options{Label: label, Size: size, ModTime: epoch, Journal: journal, Progress: w.progress(label)})
			return err
		}
	}
	parts := []diskPart{
		{name: "efi", label: labelGrub, typ: gpt.EFISystem, size: espSize, write: func(f io.WriterAt, start, size int64) error {
			return fat.Write(io.NewOffsetWriter(f, start), size, labelGrub, esp, fat.Options{ModTime: epoch, HiddenSectors: uint32(start / gpt.SectorSize)})
		}},
		{name: "oem", label: labelOEM, typ: gpt.LinuxFilesystem, size: oemSize, write: ext(labelOEM, oem, true)},
		{name: "recovery", label: labelRecovery, typ: gpt.LinuxFilesystem, size: 2*imgSize + recoverySpare, write: ext(labelRecovery, recoveryTree, true)},
		{name: "state", label: labelState, typ: gpt.LinuxFilesystem, size: 3*imgSize + stateSpare, write: ext(labelState, stateTree, true)},
		{name: "persistent", label: labelPersistent, typ: gpt.LinuxFilesystem, write: ext(labelPersistent, nil, true)},
	}
	// BIOS boot where the image has it: GRUB's core image in a bios_grub
	// partition, its boot sector in the MBR, patched to find each other.
	bios, err := w.biosBoot()
	if err != nil {
		return err
	}
	if bios != nil {
		parts = slices.Insert(parts, 1, diskPart{name: "bios", label: "COS_BIOS", typ: gpt.BIOSBoot, size: biosSize,
			write: func(f io.WriterAt, start, size int64) error {
				if int64(len(bios.core)) > size {
					return fmt.Errorf("GRUB core image of %d bytes does not fit the %d-byte bios_grub partition", len(bios.core), size)
				}
				_, err := f.WriteAt(bios.patchedCore(start), start)
				return err
			}})
	}
	// The file systems must hold their trees: checked with the sizes
	// above before anything is written.
	for name, tree := range map[string]*squashfs.Node{"oem": oem, "recovery": recoveryTree, "state": stateTree} {
		i := slices.IndexFunc(parts, func(p diskPart) bool { return p.name == name })
		need, err := ext4.RequiredSize(tree, ext4.Options{Label: parts[i].label, Journal: true})
		if err != nil {
			return fmt.Errorf("sizing %s: %w", parts[i].label, err)
		}
		if need > parts[i].size {
			parts[i].size = roundUp(need, mib)
		}
	}
	fixed := gptReserve
	for _, p := range parts[:len(parts)-1] {
		fixed += p.size
	}
	diskSize := w.p.DiskSize
	if diskSize == 0 {
		diskSize = roundUp(fixed+persistentSize, gib)
	}
	if diskSize < fixed+minPersistent {
		return fmt.Errorf("disk size %d MiB is too small for this image: it needs at least %d MiB (%s, and %d MiB for %s)",
			diskSize>>20, roundUp(fixed+minPersistent, mib)>>20, partSizes(parts[:len(parts)-1]), minPersistent>>20, labelPersistent)
	}
	diskSize = diskSize &^ (gpt.SectorSize - 1)

	table := &gpt.Table{DiskGUID: gpt.LabelGUID("COS_DISK")}
	if bios != nil {
		// Some BIOSes boot only a disk with an active MBR entry.
		table.ProtectiveBootable = true
	}
	for _, p := range parts {
		table.Partitions = append(table.Partitions, gpt.Partition{Name: p.name, Type: p.typ, GUID: gpt.LabelGUID(p.label), Size: p.size})
	}
	if err := table.Layout(diskSize); err != nil {
		return err
	}
	for i := range parts {
		parts[i].size = table.Partitions[i].Size
		if parts[i].name == "bios" {
			table.BootCode = bios.patchedBoot(table.Partitions[i].Start)
		}
	}

	// Everything fits: now the images, then the disk.
	for _, img := range diskImages {
		w.say("%s (%s, %d MiB ext4)", img.file, img.label, imgSize>>20)
		if _, err := ext4.WriteFile(images[img.file], w.root, ext4.Options{Label: img.label, Size: imgSize, ModTime: epoch, Progress: w.progress(img.file)}); err != nil {
			return fmt.Errorf("%s: %w", img.file, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	// A sparse file of the disk's size: free space is never written.
	if err := f.Truncate(diskSize); err != nil {
		return err
	}
	if err := table.Write(f, diskSize); err != nil {
		return fmt.Errorf("partition table: %w", err)
	}
	for i, p := range parts {
		w.say("partition %d %s (%s, %d MiB)", i+1, p.name, p.label, p.size>>20)
		if err := p.write(f, table.Partitions[i].Start, p.size); err != nil {
			return fmt.Errorf("partition %s (%s): %w", p.name, p.label, err)
		}
	}
	w.say("disk: %d MiB in %s", diskSize>>20, time.Since(start).Round(time.Second))
	return f.Close()
}

// biosAssets are GRUB's i386-pc boot sector and core image, made by the
// finalize step from the image's grub.
type biosAssets struct{ boot, core []byte }

// biosBoot reads the BIOS assets; nil when the architecture has no BIOS.
func (w *run) biosBoot() (*biosAssets, error) {
	core, err := readFile(w.root, bootAssets+"/core.img")
	if err != nil {
		return nil, nil
	}
	boot, err := readFile(w.root, bootAssets+"/boot.img")
	if err != nil || len(boot) != 512 {
		return nil, fmt.Errorf("the image has core.img but no 512-byte boot.img in %s", bootAssets)
	}
	if len(core) < 2*gpt.SectorSize {
		return nil, fmt.Errorf("%s/core.img is only %d bytes", bootAssets, len(core))
	}
	return &biosAssets{boot: boot, core: core}, nil
}

// GRUB i386-pc offsets (grub-core/boot/i386/pc/boot.S and diskboot.S),
// what grub-bios-setup patches: the boot sector's LBA of the core image,
// and the core's first blocklist entry (the sectors after its first one).
const (
	grubBootKernelSector = 0x5c
	grubCoreBlocklist    = gpt.SectorSize - 12
)

// patchedBoot is the MBR boot code (440 bytes) loading the core image at
// byte offset coreStart.
func (b *biosAssets) patchedBoot(coreStart int64) []byte {
	code := slices.Clone(b.boot[:440])
	binary.LittleEndian.PutUint64(code[grubBootKernelSector:], uint64(coreStart/gpt.SectorSize))
	return code
}

// patchedCore is the core image whose first sector loads the rest from
// the sectors that follow it at coreStart.
func (b *biosAssets) patchedCore(coreStart int64) []byte {
	core := slices.Clone(b.core)
	binary.LittleEndian.PutUint64(core[grubCoreBlocklist:], uint64(coreStart/gpt.SectorSize+1))
	return core
}

func partSizes(parts []diskPart) string {
	var s []string
	for _, p := range parts {
		s = append(s, fmt.Sprintf("%s %d MiB", p.label, p.size>>20))
	}
	return strings.Join(s, ", ")
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// epoch is the time stamped on generated files.
func (w *run) epoch() time.Time {
	if w.p.Epoch.IsZero() {
		return time.Unix(0, 0)
	}
	return w.p.Epoch
}

// efiLoader is the image's removable-media UEFI loader.
func (w *run) efiLoader() (string, []byte, error) {
	for _, n := range efiNames {
		if data, err := readFile(w.root, bootAssets+"/"+n); err == nil {
			return n, data, nil
		}
	}
	return "", nil, fmt.Errorf("the image has no UEFI loader in %s (%v): it was not built by kairos", bootAssets, efiNames)
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
