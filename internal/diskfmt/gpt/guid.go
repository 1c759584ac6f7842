package gpt

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a 128-bit identifier in RFC 4122 byte order, the order of its
// string form: C12A7328-F81F-11D2-BA4B-00A0C93EC93B is {0xC1, 0x2A, ...}.
// On disk UEFI stores the first three fields little-endian (see Encode).
type GUID [16]byte

// Partition type GUIDs (UEFI 2.10 table 5.7 and the Discoverable Partitions
// Specification), the ones a Kairos disk uses.
var (
	// EFISystem is the EFI System Partition (COS_GRUB under UEFI).
	EFISystem = MustParseGUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
	// BIOSBoot is GRUB's BIOS boot partition ("bios_grub"), where grub-install
	// embeds core.img when booting a GPT disk from a legacy BIOS.
	BIOSBoot = MustParseGUID("21686148-6449-6E6F-744E-656564454649")
	// LinuxFilesystem is the generic Linux data partition (COS_OEM,
	// COS_RECOVERY, COS_STATE, COS_PERSISTENT).
	LinuxFilesystem = MustParseGUID("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
	// BasicData is Microsoft's basic data partition, which hybrid ISOs use
	// for the gaps that cover the ISO 9660 file system.
	BasicData = MustParseGUID("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7")
)

// NamespaceURL is the RFC 4122 URL namespace, the one upstream Kairos
// (AuroraBoot: uuid.NewV5(uuid.NamespaceURL, label)) hashes labels in.
var NamespaceURL = MustParseGUID("6BA7B811-9DAD-11D1-80B4-00C04FD430C8")

// LabelGUID returns the deterministic GUID of a label: the RFC 4122 version 5
// (SHA-1) UUID of label in NamespaceURL. LabelGUID("COS_GRUB") is
// 81444E82-66B3-5ED2-961B-497665F12BE2 on every build.
func LabelGUID(label string) GUID {
	return NewSHA1GUID(NamespaceURL, label)
}

// NewSHA1GUID returns the version 5 UUID of name in namespace (RFC 4122 4.3).
func NewSHA1GUID(namespace GUID, name string) GUID {
	h := sha1.New()
	h.Write(namespace[:])
	h.Write([]byte(name))
	var g GUID
	copy(g[:], h.Sum(nil))
	g[6] = g[6]&0x0f | 0x50 // version 5
	g[8] = g[8]&0x3f | 0x80 // RFC 4122 variant
	return g
}

// ParseGUID parses the 36-character form, in either case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q: want the form XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", s)
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	copy(g[:], b)
	return g, nil
}

// MustParseGUID is ParseGUID for constants; it panics on a malformed GUID.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the upper-case 36-character form, as sgdisk prints it.
func (g GUID) String() string {
	h := strings.ToUpper(hex.EncodeToString(g[:]))
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// IsZero reports whether g is the all-zero GUID, which marks an unused entry.
func (g GUID) IsZero() bool { return g == GUID{} }

// Encode returns the on-disk form (UEFI 2.10 appendix A): time_low,
// time_mid and time_hi_and_version little-endian, the last 8 bytes as is.
func (g GUID) Encode() [16]byte {
	return [16]byte{
		g[3], g[2], g[1], g[0],
		g[5], g[4],
		g[7], g[6],
		g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15],
	}
}
