package disklayout

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
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

// efiLoaders are, by architecture, the removable-media loader name and the
// files that go beside it when the loader is shim (the signed chain): shim
// loads its second stage and its key manager by these fixed names.
var efiLoaders = []struct {
	name   string
	beside []string
}{
	{"BOOTX64.EFI", []string{"grubx64.efi", "mmx64.efi"}},
	{"BOOTAA64.EFI", []string{"grubaa64.efi", "mmaa64.efi"}},
}

// GrubPrefixFile names, in BootAssets, the ESP directory a signed GRUB
// reads its config from first (/EFI/debian); absent for a GRUB the build
// made, which reads EFI/BOOT.
const GrubPrefixFile = "grub-prefix"

// EFIFile is one file of the ESP's EFI/BOOT directory.
type EFIFile struct {
	Name string
	Data []byte
}

// Files on COS_STATE and COS_OEM besides the images.
const (
	StateMenu = "grub2/grub.cfg"
	OEMEnv    = "grubenv"
	// StateEnv is the user's grub environment on COS_STATE, where it is
	// when COS_OEM is encrypted (grub cannot read it there); grub and the
	// agent take it when it exists.
	StateEnv        = "grubenv"
	StateOEMEnv     = "grub_oem_env"
	BootAssessment  = "boot_assessment"
	CustomConfig    = "90_custom.yaml"
	RecoverySquash  = "recovery.squashfs"
	TransitionImage = "transition.img"
)

// Boot is what an image boots a disk with.
type Boot struct {
	// EFI is what goes in EFI/BOOT: the UEFI loader first, then, for the
	// signed chain, the GRUB and key manager shim loads.
	EFI []EFIFile
	// GrubPrefix is the ESP directory (EFI/debian) that also gets the ESP
	// menu, for a signed GRUB; empty otherwise.
	GrubPrefix string
	// ESPMenu is EFI/BOOT/grub.cfg, StateMenu grub2/grub.cfg on COS_STATE.
	ESPMenu, StateMenu []byte
	// BIOS is GRUB's i386-pc boot sector and core image; nil on
	// architectures without BIOS.
	BIOS *BIOS
}

// MoveEnvToState puts the user's grubenv of files on COS_STATE
// (StateEnv), for a node whose COS_OEM is encrypted.
func MoveEnvToState(files []File) {
	for i, f := range files {
		if f.Part == PartOEM && f.Path == OEMEnv {
			files[i].Part, files[i].Path = PartState, StateEnv
		}
	}
}

// ReadBoot reads the boot files from an image through read (a path in
// the image to its content).
func ReadBoot(read func(string) ([]byte, error)) (*Boot, error) {
	b := &Boot{}
	var err error
	if b.EFI, b.GrubPrefix, err = EFILoader(read); err != nil {
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

// EFILoader is what the image boots UEFI machines with: the files of
// EFI/BOOT (the removable-media loader first, then what shim loads beside
// it, when the image has them) and the signed GRUB's config directory on
// the ESP ("" when the image's GRUB is not a signed one).
func EFILoader(read func(string) ([]byte, error)) ([]EFIFile, string, error) {
	var names []string
	for _, l := range efiLoaders {
		names = append(names, l.name)
		data, err := read(BootAssets + "/" + l.name)
		if err != nil {
			continue
		}
		files := []EFIFile{{l.name, data}}
		for _, n := range l.beside {
			if data, err := read(BootAssets + "/" + n); err == nil {
				files = append(files, EFIFile{n, data})
			}
		}
		prefix, err := read(BootAssets + "/" + GrubPrefixFile)
		if err != nil {
			return files, "", nil
		}
		dir, err := grubPrefix(prefix)
		if err != nil {
			return nil, "", err
		}
		if len(files) == 1 {
			return nil, "", fmt.Errorf("the image has a signed GRUB's %s but no %s beside %s in %s", GrubPrefixFile, l.beside[0], l.name, BootAssets)
		}
		return files, dir, nil
	}
	return nil, "", fmt.Errorf("the image has no UEFI loader in %s (%v): it was not built by kairos", BootAssets, names)
}

// grubPrefix checks the content of GrubPrefixFile, from the image: an ESP
// directory under /EFI, returned without its leading slash.
func grubPrefix(data []byte) (string, error) {
	p := strings.TrimSpace(string(data))
	dir := strings.TrimPrefix(p, "/")
	if !strings.HasPrefix(p, "/EFI/") || path.Clean(p) != p || strings.ContainsAny(dir, "\\ \t\n") || strings.Contains(dir, "..") {
		return "", fmt.Errorf("%s/%s says %q: want an ESP directory such as /EFI/debian", BootAssets, GrubPrefixFile, p)
	}
	return dir, nil
}

// Loader is the name of the removable-media loader in EFI/BOOT.
func (b *Boot) Loader() string { return b.EFI[0].Name }

// ESPFiles are the ESP's files for this boot: EFI/BOOT's, and the ESP menu
// there and in the signed GRUB's directory.
func (b *Boot) ESPFiles() []File {
	var files []File
	for _, f := range b.EFI {
		files = append(files, File{PartEFI, "EFI/BOOT/" + f.Name, 0o644, f.Data})
	}
	files = append(files, File{PartEFI, "EFI/BOOT/grub.cfg", 0o644, b.ESPMenu})
	if b.GrubPrefix != "" {
		files = append(files, File{PartEFI, b.GrubPrefix + "/grub.cfg", 0o644, b.ESPMenu})
	}
	return files
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
	files := append(b.ESPFiles(),
		File{PartState, StateMenu, 0o644, b.StateMenu},
		File{PartState, StateOEMEnv, 0o644, empty},
		File{PartState, BootAssessment, 0o644, empty},
		File{PartOEM, OEMEnv, 0o644, oemEnv},
	)
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
