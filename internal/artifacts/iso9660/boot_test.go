package iso9660

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

// TestBootKairosISO rebuilds a real Kairos live ISO with this writer and
// boots it in QEMU four ways: as a CD and as a disk, under SeaBIOS and OVMF,
// logging in on the serial console (user kairos) and reporting the device
// the live medium was mounted from. It is slow (minutes
// per boot, software emulation) and runs only with KAIROS_ISO_BOOT=1:
//
//	KAIROS_ISO_BOOT=1 go test -run TestBootKairosISO -v -timeout 40m ./internal/artifacts/iso9660/
//
// The boot assets come from an ISO built by the project (xorriso):
// KAIROS_ISO_BOOT_SOURCE, else the newest of build/e2e/*.iso and build/*.iso.
// GRUB's boot_hybrid.img comes from KAIROS_ISO_BOOT_MBR, else the ISO's
// rootfs.squashfs (/usr/lib/kairos/boot/boot_hybrid.img), else the host's
// grub-pc-bin. KAIROS_ISO_BOOT_OUT keeps the rebuilt ISO at that path;
// KAIROS_ISO_BOOT_CASES selects cases (e.g. "cd-bios,disk-uefi").
func TestBootKairosISO(t *testing.T) {
	if os.Getenv("KAIROS_ISO_BOOT") != "1" {
		t.Skip("set KAIROS_ISO_BOOT=1 to boot a rebuilt Kairos ISO in QEMU (slow)")
	}
	xorriso := need(t, "xorriso")
	src := sourceISO(t)
	t.Logf("boot assets from %s", src)

	tree := filepath.Join(t.TempDir(), "tree")
	run(t, xorriso, "-osirrox", "on", "-indev", src, "-extract", "/", tree)
	// The catalog comes back as a file; the writer makes its own.
	os.Remove(filepath.Join(tree, "boot.catalog"))
	mbr := hybridMBR(t, tree)

	root, err := FromDir(tree)
	if err != nil {
		t.Fatal(err)
	}
	rational(root)
	img := &Image{
		VolumeID:    "COS_LIVE",
		ModTime:     epoch,
		Root:        root,
		Joliet:      true,
		CatalogPath: "boot.catalog",
		BIOSBoot: &BIOSBoot{
			Path:          "boot/grub/eltorito.img",
			BootInfoTable: true,
			GRUB2BootInfo: true,
			MBRCode:       mbr,
		},
		EFIBoot: &EFIBoot{Path: "boot/uefi.img", Partition: true},
	}
	out := os.Getenv("KAIROS_ISO_BOOT_OUT")
	if out == "" {
		out = filepath.Join(t.TempDir(), "kairos-rebuilt.iso")
	}
	start := time.Now()
	if err := WriteFile(out, img); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(out)
	t.Logf("wrote %s: %d bytes in %s", out, st.Size(), time.Since(start).Round(time.Millisecond))
	t.Log(run(t, xorriso, "-indev", out, "-report_el_torito", "plain", "-report_system_area", "plain"))
	if fdisk, err := exec.LookPath("fdisk"); err == nil {
		t.Log(run(t, fdisk, "-l", out))
	}

	cases := []struct {
		name string
		opts qemu.Options
	}{
		{"cd-bios", qemu.Options{Firmware: qemu.BIOS, CDROM: out}},
		{"cd-uefi", qemu.Options{Firmware: qemu.UEFI, CDROM: out}},
		// As a disk (what dd to a USB stick gives): writes go to a
		// temporary overlay, the image stays as built.
		{"disk-bios", qemu.Options{Firmware: qemu.BIOS, Disks: []string{out}, Extra: []string{"-snapshot"}}},
		{"disk-uefi", qemu.Options{Firmware: qemu.UEFI, Disks: []string{out}, Extra: []string{"-snapshot"}}},
	}
	only := os.Getenv("KAIROS_ISO_BOOT_CASES")
	logDir := os.Getenv("KAIROS_ISO_BOOT_LOGS")
	if logDir == "" {
		logDir = t.TempDir()
	}
	results := map[string]string{}
	for _, c := range cases {
		if only != "" && !strings.Contains(","+only+",", ","+c.name+",") {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			waitNoQEMU(t)
			c.opts.LogPath = filepath.Join(logDir, c.name+".serial.log")
			m, err := qemu.Start(c.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Stop()
			start := time.Now()
			ctx := context.Background()
			// Login waits for the prompt; then ask the live system which
			// device its medium was mounted from.
			if err := m.Login(ctx, "kairos", "kairos", 8*time.Minute); err != nil {
				results[c.name] = "FAILED"
				t.Fatalf("%s: %v", c.name, err)
			}
			results[c.name] = fmt.Sprintf("login after %s", time.Since(start).Round(time.Second))
			m.Run(ctx, "sudo dmesg -n 1", time.Minute)
			if out, _, err := m.Run(ctx, "findmnt -n -o SOURCE,FSTYPE /run/initramfs/live", time.Minute); err == nil {
				results[c.name] += ", live medium " + strings.Join(strings.Fields(out), " ")
			}
			t.Logf("%s: %s (serial log %s)", c.name, results[c.name], c.opts.LogPath)
		})
	}
	for _, c := range cases {
		if r, ok := results[c.name]; ok {
			t.Logf("%-9s %s", c.name, r)
		}
	}
}

// sourceISO finds an ISO built by the project to take the boot assets from.
func sourceISO(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KAIROS_ISO_BOOT_SOURCE"); p != "" {
		return p
	}
	var best string
	var bestTime time.Time
	for _, pattern := range []string{"../../../build/e2e/*.iso", "../../../build/*.iso"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if st, err := os.Stat(m); err == nil && st.ModTime().After(bestTime) {
				best, bestTime = m, st.ModTime()
			}
		}
	}
	if best == "" {
		t.Skip("no Kairos ISO under build/ to take boot assets from (set KAIROS_ISO_BOOT_SOURCE)")
	}
	abs, _ := filepath.Abs(best)
	return abs
}

// hybridMBR returns GRUB's boot_hybrid.img, preferring the one of the image.
func hybridMBR(t *testing.T, tree string) []byte {
	t.Helper()
	if p := os.Getenv("KAIROS_ISO_BOOT_MBR"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if unsquashfs, err := exec.LookPath("unsquashfs"); err == nil {
		out, err := exec.Command(unsquashfs, "-cat", filepath.Join(tree, "rootfs.squashfs"), "usr/lib/kairos/boot/boot_hybrid.img").Output()
		if err == nil && len(out) == 512 {
			t.Logf("boot_hybrid.img from rootfs.squashfs")
			return out
		}
	}
	b, err := os.ReadFile("/usr/lib/grub/i386-pc/boot_hybrid.img")
	if err != nil {
		t.Skip("no boot_hybrid.img (set KAIROS_ISO_BOOT_MBR)")
	}
	t.Logf("boot_hybrid.img from the host's grub-pc-bin")
	return b
}

// waitNoQEMU waits (up to 20 minutes) until no other QEMU runs: the
// machine has 2 cores and boots are measured one at a time.
func waitNoQEMU(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Minute)
	for {
		out, _ := exec.Command("pgrep", "-f", "qemu-system").Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Skipf("another QEMU is still running (pids %s)", strings.Join(pids, " "))
		}
		t.Logf("waiting for running QEMU (pids %s)", strings.Join(pids, " "))
		time.Sleep(30 * time.Second)
	}
}
