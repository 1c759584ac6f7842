package disklayout

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/fat"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/grubenv"
)

// Where an image keeps what its disks boot with: the boot step makes the
// loaders from the image's own grub (overlay/build/boot.sh), and
// the menus are overlay/rootfs/etc/cos.
const (
	BootAssets = "/usr/lib/kairos/boot"
	// StateGrubCfg is the installed system's menu, grub2/grub.cfg on
	// COS_STATE; ESPGrubCfg is the ESP's first stage that finds it.
	StateGrubCfg = "/etc/cos/grub.cfg"
	ESPGrubCfg   = "/etc/cos/grub_efi.cfg"
)

// EFINames are the removable-media loader names, by architecture.
var EFINames = []string{"BOOTX64.EFI", "BOOTAA64.EFI"}

// Files on COS_STATE and COS_OEM besides the images.
const (
	StateMenu       = "grub2/grub.cfg"
	OEMEnv          = "grubenv"
	StateOEMEnv     = "grub_oem_env"
	BootAssessment  = "boot_assessment"
	CustomConfig    = "90_custom.yaml"
	RecoverySquash  = "recovery.squashfs"
	TransitionImage = "transition.img"
)

// Boot is what an image boots a disk with.
type Boot struct {
	// EFIName and EFI are the UEFI loader (EFI/BOOT/<EFIName>).
	EFIName string
	EFI     []byte
	// ESPMenu is EFI/BOOT/grub.cfg, StateMenu grub2/grub.cfg on COS_STATE.
	ESPMenu, StateMenu []byte
	// BIOS is GRUB's i386-pc boot sector and core image; nil on
	// architectures without BIOS.
	BIOS *BIOS
}

// ReadBoot reads the boot files from an image through read (a path in
// the image to its content).
func ReadBoot(read func(string) ([]byte, error)) (*Boot, error) {
	b := &Boot{}
	var err error
	if b.EFIName, b.EFI, err = EFILoader(read); err != nil {
		return nil, err
	}
	if b.StateMenu, err = read(StateGrubCfg); err != nil {
		return nil, fmt.Errorf("the image has no %s (%v): it was not built by kairos", StateGrubCfg, err)
	}
	if b.ESPMenu, err = read(ESPGrubCfg); err != nil {
		return nil, fmt.Errorf("the image has no %s (%v): it was not built by kairos", ESPGrubCfg, err)
	}
	core, err := read(BootAssets + "/core.img")
	if err != nil {
		return b, nil // no BIOS on this architecture
	}
	boot, err := read(BootAssets + "/boot.img")
	if err != nil || len(boot) != 512 {
		return nil, fmt.Errorf("the image has core.img but no 512-byte boot.img in %s", BootAssets)
	}
	if len(core) < 2*gpt.SectorSize {
		return nil, fmt.Errorf("%s/core.img is only %d bytes", BootAssets, len(core))
	}
	if int64(len(core)) > BIOSSize {
		return nil, fmt.Errorf("GRUB core image of %d bytes does not fit the %d-byte bios_grub partition", len(core), BIOSSize)
	}
	b.BIOS = &BIOS{Boot: boot, Core: core}
	return b, nil
}

// EFILoader is the image's removable-media UEFI loader: its name and
// content.
func EFILoader(read func(string) ([]byte, error)) (string, []byte, error) {
	for _, n := range EFINames {
		if data, err := read(BootAssets + "/" + n); err == nil {
			return n, data, nil
		}
	}
	return "", nil, fmt.Errorf("the image has no UEFI loader in %s (%v): it was not built by kairos", BootAssets, EFINames)
}

// File is one file of partition Part, at Path (slash separated, from the
// file system's root; directories on the way are 0755).
type File struct {
	Part, Path string
	Mode       fs.FileMode
	Data       []byte
}

// Files is everything the partitions of a disk booting with b hold
// besides the images, with grubEnv in COS_OEM's grubenv and the user's
// config, when given. The disk-image writer and the installer both write
// exactly this list, so an image and an installed node boot the same way.
func (b *Boot) Files(grubEnv map[string]string, config []byte) ([]File, error) {
	empty, _ := grubenv.Encode(nil) // no variables: cannot fail
	oemEnv, err := grubenv.Encode(grubEnv)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", LabelOEM, OEMEnv, err)
	}
	files := []File{
		{PartEFI, "EFI/BOOT/" + b.EFIName, 0o644, b.EFI},
		{PartEFI, "EFI/BOOT/grub.cfg", 0o644, b.ESPMenu},
		{PartState, StateMenu, 0o644, b.StateMenu},
		{PartState, StateOEMEnv, 0o644, empty},
		{PartState, BootAssessment, 0o644, empty},
		{PartOEM, OEMEnv, 0o644, oemEnv},
	}
	if len(config) > 0 {
		// Read at every boot; 0600 as it may hold passwords and keys.
		files = append(files, File{PartOEM, CustomConfig, 0o600, config})
	}
	return files, nil
}

// WriteESP writes the COS_GRUB file system of files on partition p to w
// (at offset 0); FAT keeps no modes.
func WriteESP(w io.WriterAt, p *Part, files []File, modTime time.Time) error {
	mtime := modTime.Unix()
	esp := fstree.Dir(0o755, mtime)
	for _, f := range files {
		if f.Part != PartEFI {
			continue
		}
		if err := esp.Add(f.Path, fstree.File(f.Data, f.Mode, mtime), 0o755, mtime); err != nil {
			return err
		}
	}
	return fat.Write(w, p.Size, p.Label, esp, fat.Options{ModTime: modTime, HiddenSectors: uint32(p.Start / gpt.SectorSize)})
}

// BIOS is GRUB's i386-pc boot sector (boot.img) and core image.
type BIOS struct{ Boot, Core []byte }

// GRUB i386-pc offsets (grub-core/boot/i386/pc/boot.S and diskboot.S),
// what grub-bios-setup patches: the boot sector's LBA of the core image,
// and the core's first blocklist entry (the sectors after its first one).
const (
	grubBootKernelSector = 0x5c
	grubCoreBlocklist    = gpt.SectorSize - 12
)

// PatchedBoot is the MBR boot code (440 bytes) loading the core image at
// byte offset coreStart.
func (b *BIOS) PatchedBoot(coreStart int64) []byte {
	code := slices.Clone(b.Boot[:440])
	binary.LittleEndian.PutUint64(code[grubBootKernelSector:], uint64(coreStart/gpt.SectorSize))
	return code
}

// PatchedCore is the core image whose first sector loads the rest from
// the sectors that follow it at coreStart.
func (b *BIOS) PatchedCore(coreStart int64) []byte {
	core := slices.Clone(b.Core)
	binary.LittleEndian.PutUint64(core[grubCoreBlocklist:], uint64(coreStart/gpt.SectorSize+1))
	return core
}
