//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

// TestSecureBoot boots the e2e ISO under OVMF with Secure Boot enforcing
// and Microsoft's keys enrolled (what machines ship with): shim (signed by
// the third-party CA) runs Debian's signed GRUB, which runs the signed
// kernel, and the live system says Secure Boot is on. The same firmware
// refuses a copy of the ISO whose kernel lost its signature. (The
// installed disk under Secure Boot, an upgrade to an unsigned kernel
// included, is TestAutoInstall/uefi's node.)
func TestSecureBoot(t *testing.T) {
	iso := buildImage(t).iso
	ctx := context.Background()

	t.Run("live", func(t *testing.T) {
		m, err := qemu.Start(qemu.Options{Firmware: qemu.SecureBoot, CDROM: iso, LogPath: logPath(t)})
		must(t, err)
		defer m.Stop()
		t.Logf("serial log: %s", m.LogPath())
		if _, err := m.WaitFor(ctx, regexp.MustCompile(`EFI stub: UEFI Secure Boot is enabled`), 4*time.Minute); err != nil {
			t.Fatalf("the kernel did not start under Secure Boot: %v", err)
		}
		if err := m.Login(ctx, "kairos", "kairos", 6*time.Minute); err != nil {
			t.Fatal(err)
		}
		m.Run(ctx, "sudo dmesg -n 1", time.Minute)
		checkLive(ctx, t, m)
		checkSecureBoot(t, shell(ctx, t, m), true)
	})

	t.Run("unsigned-kernel", func(t *testing.T) {
		bad := unsignedKernelISO(t, iso)
		m, err := qemu.Start(qemu.Options{Firmware: qemu.SecureBoot, CDROM: bad, LogPath: logPath(t)})
		must(t, err)
		defer m.Stop()
		t.Logf("serial log: %s", m.LogPath())
		if _, err := m.WaitFor(ctx, regexp.MustCompile(`bad shim signature`), 4*time.Minute); err != nil {
			t.Fatalf("the unsigned kernel was not refused: %v", err)
		}
		// GRUB falls back to the next entries, whose kernel is the same.
		if _, err := m.WaitFor(ctx, regexp.MustCompile(`Failed to boot both default and fallback entries`), 2*time.Minute); err != nil {
			t.Fatalf("GRUB did not give up on the unsigned kernel: %v", err)
		}
		if m.Seen(regexp.MustCompile(`Linux version|EFI stub`)) {
			t.Fatalf("the unsigned kernel ran")
		}
	})
}

// checkSecureBoot: `kairos-agent state` and mokutil agree on whether the
// firmware enforces Secure Boot.
func checkSecureBoot(t *testing.T, sh func(string) string, want bool) {
	t.Helper()
	wantState, wantMok := "false", "SecureBoot disabled"
	if want {
		wantState, wantMok = "true", "SecureBoot enabled"
	}
	if got := sh("kairos-agent state get kairos.secureboot"); got != wantState {
		t.Errorf("kairos-agent state get kairos.secureboot = %q, want %s", got, wantState)
	}
	if got := sh("mokutil --sb-state 2>&1 || true"); !strings.Contains(got, wantMok) {
		t.Errorf("mokutil --sb-state = %q, want %q", got, wantMok)
	}
}

// unsignedKernelISO is a copy of iso whose kernel (/boot/kernel) has no
// signature any more: its PE certificate table entry is zeroed in place.
func unsignedKernelISO(t *testing.T, iso string) string {
	t.Helper()
	dir := t.TempDir()
	kernelPath := filepath.Join(dir, "kernel")
	run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/kernel", kernelPath)
	kernel, err := os.ReadFile(kernelPath)
	must(t, err)
	data, err := os.ReadFile(iso)
	must(t, err)
	off := bytes.Index(data, kernel[:64<<10])
	if off < 0 || bytes.Index(data[off+1:], kernel[:64<<10]) >= 0 {
		t.Fatalf("the kernel is not stored once, contiguously, in %s", iso)
	}
	unsigned := unsignKernel(t, kernel)
	copy(data[off:], unsigned)
	out := filepath.Join(dir, "unsigned.iso")
	must(t, os.WriteFile(out, data, 0o644))
	return out
}

// unsignKernel returns the kernel (a PE image, the EFI stub) with its
// Authenticode signature detached: the certificate table data directory
// entry zeroed, as `sbattach --remove` leaves it but for the bytes.
func unsignKernel(t *testing.T, k []byte) []byte {
	t.Helper()
	if len(k) < 0x40 || string(k[:2]) != "MZ" {
		t.Fatalf("the kernel is not a PE image")
	}
	pe := int(binary.LittleEndian.Uint32(k[0x3c:]))
	if pe+24+160 > len(k) || string(k[pe:pe+4]) != "PE\x00\x00" {
		t.Fatalf("the kernel has no PE header")
	}
	opt := pe + 24
	// Data directory 4 (certificate table): after 96 bytes of PE32 or
	// 112 of PE32+ optional header fields, 8 bytes per entry.
	dirs := opt + 96
	if binary.LittleEndian.Uint16(k[opt:]) == 0x20b {
		dirs = opt + 112
	}
	entry := dirs + 4*8
	if binary.LittleEndian.Uint32(k[entry+4:]) == 0 {
		t.Fatalf("the kernel carries no signature to take off: the image's kernel should be the distro's signed one")
	}
	out := bytes.Clone(k)
	copy(out[entry:entry+8], make([]byte, 8))
	return out
}
