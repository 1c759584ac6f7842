// Package install puts Kairos on a disk: the contract's GPT layout
// (disklayout), grub for UEFI and BIOS, the active, passive and recovery
// images, and the user's cloud-config, with the install stages around it.
// Planning (Plan) reads and checks everything and writes nothing, so a
// wrong disk or a disk too small is refused before it is touched; Run
// executes a plan.
package install

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos/internal/bytesize"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/disklayout"
)

// Options are what the user asked for: the install section of the
// cloud-config, overridden by command-line flags.
type Options struct {
	// Device is the target disk, or "auto" (the first disk big enough that
	// is not the boot medium).
	Device string
	// Source is where active.img comes from: "" for the running live
	// system, oci:<ref> (a registry), dir:<path>, file:<oci tar>.
	Source string
	// Partitions override the contract's sizes (install.partitions).
	Partitions disklayout.Sizes
	// GrubEnv goes to COS_OEM's grubenv (install.grub_options), e.g.
	// extra_cmdline.
	GrubEnv map[string]string
	// Config is the user cloud-config copied to /oem/90_custom.yaml.
	Config []byte
	// Reboot or Poweroff when done.
	Reboot, Poweroff bool
	// AllowInsecure allows plain-HTTP registries for Source.
	AllowInsecure bool
	// Encrypt lists the partitions (COS_PERSISTENT, COS_OEM) made LUKS2
	// with their key sealed to the TPM (install.encrypted_partitions).
	Encrypt []string
	// RecoveryPassphrase opens them without the TPM; a secret.
	RecoveryPassphrase []byte
}

// FromConfig reads the install section of a merged cloud-config.
func FromConfig(m cloudconfig.Merged) (Options, error) {
	in := m.Config().Install
	o := Options{Device: in.Device, Source: in.Source, Reboot: in.Reboot, Poweroff: in.Poweroff,
		Partitions: disklayout.Sizes{}, GrubEnv: map[string]string{}, Encrypt: in.EncryptedParts}
	if in.Encryption.RecoveryPassphrase != "" {
		o.RecoveryPassphrase = []byte(in.Encryption.RecoveryPassphrase)
	}
	for name, p := range in.Partitions {
		size, err := partitionSize(p.Size)
		if err != nil {
			return o, fmt.Errorf("install.partitions.%s.size: %w", name, err)
		}
		o.Partitions[name] = size
	}
	// The top level's grub_options, as upstream, then install's.
	maps.Copy(o.GrubEnv, m.Config().GrubOptions)
	maps.Copy(o.GrubEnv, in.GrubOptions)
	return o, nil
}

// Auto says whether the config asks for an unattended install.
func Auto(m cloudconfig.Merged) bool { return m.Config().Install.Auto }

// partitionSize reads a size: a bare number is MiB, as upstream; units
// are taken too ("512MiB", "4G").
func partitionSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing")
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n * disklayout.MiB, nil
	}
	return bytesize.Parse(s)
}
