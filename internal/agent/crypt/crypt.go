// Package crypt encrypts the partitions a config names (install.
// encrypted_partitions) with LUKS2, seals their keys to the machine's TPM
// 2.0, and opens them at boot. It drives the distro's tools and does no
// cryptography of its own:
//
//   - cryptsetup(8) formats the LUKS2 container, labeled kairos-persistent
//     for COS_PERSISTENT (ContainerLabel); the file system inside has the
//     partition's label, so everything that mounts by label keeps working,
//     and no two devices ever answer to one label (udev would link
//     /dev/disk/by-label to either);
//   - systemd-cryptenroll(1) seals a keyslot's key to the TPM with a
//     policy on PCR 7 (the Secure Boot state and the keys that verified
//     the boot chain), stored as a systemd-tpm2 token in the LUKS2 header;
//   - systemd-cryptsetup(8) unlocks it in the initramfs with
//     tpm2-device=auto and headless=true: no prompt, ever.
//
// The passphrase the container is formatted with is random, held in
// memory and handed to the tools on their standard input or an
// in-memory file descriptor (memfd); once the TPM
// keyslot (and the optional recovery passphrase) exist, its keyslot is
// removed. Nothing secret is written to disk or logged.
package crypt

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// PCRs is the TPM PCR policy the keys are sealed to: PCR 7 holds the
// Secure Boot state and the certificates that verified shim, GRUB and the
// kernel, so the key comes out only on this machine, booted through the
// same trusted chain. A/B upgrades signed by the same keys keep it.
const PCRs = "7"

// Labels are the partitions that can be encrypted, by file system label.
// COS_STATE and COS_RECOVERY hold the images GRUB reads, and COS_GRUB the
// loaders the firmware runs: those stay clear (their integrity is Secure
// Boot's and the images' business).
var Labels = []string{"COS_PERSISTENT", "COS_OEM"}

// MapperName is the device-mapper name of an open partition:
// /dev/mapper/kairos-persistent for COS_PERSISTENT.
func MapperName(label string) string {
	return "kairos-" + strings.ToLower(strings.TrimPrefix(label, "COS_"))
}

// ContainerLabel is the LUKS2 label of the container holding the file
// system labeled label: its mapper name, kairos-persistent.
func ContainerLabel(label string) string { return MapperName(label) }

// Tools runs the distro's tools. The zero value runs them from $PATH and
// reads the machine's /sys and /dev.
type Tools struct {
	// Sys and Dev are /sys and /dev (tests point them elsewhere).
	Sys, Dev string
	// Exec runs cmd (tests record it); nil runs it.
	Exec func(cmd *exec.Cmd) error
	// Rand is the source of the formatting passphrase; nil is crypto/rand.
	Rand io.Reader
}

func (t *Tools) sys(p string) string {
	if t.Sys == "" {
		return filepath.Join("/sys", p)
	}
	return filepath.Join(t.Sys, p)
}

func (t *Tools) dev(p string) string {
	if t.Dev == "" {
		return filepath.Join("/dev", p)
	}
	return filepath.Join(t.Dev, p)
}

// ErrNoTPM is a machine without a usable TPM 2.0.
var ErrNoTPM = errors.New("no TPM 2.0")

// CheckTPM says whether the machine has a TPM 2.0 the tools can use: one
// in /sys/class/tpm whose major version is 2, and the kernel's resource
// manager device (/dev/tpmrm0) for it.
func (t *Tools) CheckTPM() error {
	entries, err := os.ReadDir(t.sys("class/tpm"))
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("%w: the kernel lists no TPM in /sys/class/tpm (is the TPM enabled in the firmware setup?)", ErrNoTPM)
	}
	for _, e := range entries {
		v, err := os.ReadFile(t.sys(filepath.Join("class/tpm", e.Name(), "tpm_version_major")))
		if err != nil || strings.TrimSpace(string(v)) != "2" {
			continue
		}
		rm := strings.Replace(e.Name(), "tpm", "tpmrm", 1)
		if _, err := os.Stat(t.dev(rm)); err != nil {
			return fmt.Errorf("%w: %s has no resource manager device %s: %v", ErrNoTPM, e.Name(), t.dev(rm), err)
		}
		return nil
	}
	return fmt.Errorf("%w: the TPM in /sys/class/tpm is not a TPM 2.0 (TPM 1.2 cannot seal with PCR policies)", ErrNoTPM)
}

// CheckTools says whether the tools an encrypted install needs are there.
func CheckTools() error {
	var missing []string
	for _, tool := range []string{"cryptsetup", "systemd-cryptenroll"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := SystemdCryptsetup(); err != nil {
		missing = append(missing, "systemd-cryptsetup")
	}
	if len(missing) > 0 {
		return fmt.Errorf("the image lacks %s: it cannot encrypt partitions (install cryptsetup and systemd's TPM support in the image)", strings.Join(missing, ", "))
	}
	return nil
}

// SystemdCryptsetup is systemd-cryptsetup, which is not on $PATH.
func SystemdCryptsetup() (string, error) {
	for _, p := range []string{"/usr/lib/systemd/systemd-cryptsetup", "/lib/systemd/systemd-cryptsetup"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("systemd-cryptsetup not found in /usr/lib/systemd or /lib/systemd")
}

func (t *Tools) run(ctx context.Context, stdin []byte, extra []byte, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if extra != nil {
		// A second secret goes on fd 3, a memfd: memory, never a file on
		// disk, and seekable, as systemd-cryptenroll's key file reader
		// wants (a pipe is not).
		f, err := memfd(extra)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
	}
	var err error
	if t.Exec != nil {
		err = t.Exec(cmd)
	} else {
		err = cmd.Run()
	}
	if err != nil {
		// The tools never print the secrets they are given.
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// memfd is an anonymous memory file holding data, at offset 0.
func memfd(data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate("kairos-key", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "kairos-key")
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Options of an encrypted partition.
type Options struct {
	// Recovery is a passphrase added as a keyslot of its own, to open the
	// partition without the TPM (a replaced board, a firmware reset).
	Recovery []byte
}

// Format makes dev (the partition labeled label) a LUKS2 container whose
// key the TPM releases, opens it and returns the opened device, on which
// the caller makes the file system labeled label. The container's label
// is ContainerLabel(label).
func (t *Tools) Format(ctx context.Context, dev, label string, o Options) (string, error) {
	r := t.Rand
	if r == nil {
		r = rand.Reader
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(r, raw); err != nil {
		return "", fmt.Errorf("random passphrase: %w", err)
	}
	// Hex: cryptsetup and systemd-cryptenroll read key files as bytes,
	// but a printable key survives every tool's handling of NULs.
	key := []byte(hex.EncodeToString(raw))
	defer clear(key)
	name := MapperName(label)
	// The formatting key is 256 random bits and its keyslot is removed
	// below: a memory-hard KDF would only cost time (seconds under
	// emulation), so its slot uses PBKDF2 at the minimum.
	if err := t.run(ctx, key, nil, "cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2",
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--label", ContainerLabel(label), "--key-file", "-", dev); err != nil {
		return "", err
	}
	if err := t.run(ctx, nil, key, "systemd-cryptenroll", "--unlock-key-file=/proc/self/fd/3",
		"--tpm2-device=auto", "--tpm2-pcrs="+PCRs, dev); err != nil {
		return "", fmt.Errorf("sealing %s's key to the TPM: %w", label, err)
	}
	if len(o.Recovery) > 0 {
		if err := t.run(ctx, key, o.Recovery, "cryptsetup", "luksAddKey", "--batch-mode", "--key-file", "-", dev, "/proc/self/fd/3"); err != nil {
			return "", fmt.Errorf("adding %s's recovery passphrase: %w", label, err)
		}
	}
	if err := t.run(ctx, key, nil, "cryptsetup", "open", "--key-file", "-", dev, name); err != nil {
		return "", err
	}
	// The formatting passphrase was only a way in: its keyslot (0, the
	// first) goes; the TPM's and the recovery passphrase's stay.
	if err := t.run(ctx, nil, nil, "cryptsetup", "luksKillSlot", "--batch-mode", dev, "0"); err != nil {
		t.Close(ctx, label)
		return "", err
	}
	return t.dev(filepath.Join("mapper", name)), nil
}

// Unlock opens dev, labeled label, with the key the TPM releases; it never
// asks for a passphrase.
func (t *Tools) Unlock(ctx context.Context, dev, label string) (string, error) {
	sc, err := SystemdCryptsetup()
	if err != nil {
		return "", err
	}
	name := MapperName(label)
	if err := t.run(ctx, nil, nil, sc, "attach", name, dev, "-", "tpm2-device=auto,headless=true"); err != nil {
		return "", err
	}
	return t.dev(filepath.Join("mapper", name)), nil
}

// Close closes the opened partition labeled label.
func (t *Tools) Close(ctx context.Context, label string) error {
	return t.run(ctx, nil, nil, "cryptsetup", "close", MapperName(label))
}
