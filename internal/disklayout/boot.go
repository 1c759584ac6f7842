package disklayout

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/kairos-io/kairos/internal/diskfmt/fat"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

// Where an image keeps what its disks boot with: the finalize step makes
// the loaders from the image's own grub (overlay/build/finalize.sh), and
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

// ESP is the tree of the COS_GRUB partition.
func (b *Boot) ESP() (*fat.Dir, error) {
	esp := &fat.Dir{}
	if err := esp.AddFile("EFI/BOOT/"+b.EFIName, b.EFI); err != nil {
		return nil, err
	}
	if err := esp.AddFile("EFI/BOOT/grub.cfg", b.ESPMenu); err != nil {
		return nil, err
	}
	return esp, nil
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
