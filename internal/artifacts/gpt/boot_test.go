package gpt_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/artifacts/fat"
	"github.com/kairos-io/kairos/internal/artifacts/gpt"
	"github.com/kairos-io/kairos/internal/artifacts/qcow2"
)

// TestBootOVMF is the end-to-end judge of the three writers together: a GPT
// disk (gpt) whose EFI System Partition is a FAT32 file system (fat) holding
// GRUB as EFI/BOOT/BOOTX64.EFI, converted to qcow2 (qcow2), boots under
// OVMF: the firmware reads the partition table and the file system, loads
// GRUB, and GRUB (with its own FAT driver) reads grub.cfg, which prints a
// marker on the serial console. Booting in software emulation takes tens of
// seconds, so it only runs with KAIROS_BOOT_TEST=1.
func TestBootOVMF(t *testing.T) {
	if os.Getenv("KAIROS_BOOT_TEST") != "1" {
		t.Skip("set KAIROS_BOOT_TEST=1 to boot the image under OVMF")
	}
	const (
		grubEFI = "/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi"
		code    = "/usr/share/OVMF/OVMF_CODE_4M.fd"
		vars    = "/usr/share/OVMF/OVMF_VARS_4M.fd"
		marker  = "KAIROS-ARTIFACTS-BOOT-OK"
	)
	for _, f := range []string{grubEFI, code, vars} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s missing (grub-efi-amd64-bin, ovmf)", f)
		}
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed")
	}

	for _, tc := range []struct {
		name    string
		espSize int64
	}{{"FAT32-ESP", 64 << 20}, {"FAT16-ESP", 8 << 20}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			const diskSize = 256 << 20
			tab := gpt.Table{
				DiskGUID: gpt.LabelGUID("kairos-boot-test"),
				Partitions: []gpt.Partition{
					{Name: "efi", Type: gpt.EFISystem, GUID: gpt.LabelGUID("COS_GRUB"), Size: tc.espSize},
					{Name: "oem", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("COS_OEM")},
				},
			}
			if err := tab.Layout(diskSize); err != nil {
				t.Fatal(err)
			}
			raw := filepath.Join(dir, "disk.raw")
			f, err := os.Create(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Truncate(diskSize); err != nil {
				t.Fatal(err)
			}
			if err := tab.Write(f, diskSize); err != nil {
				t.Fatal(err)
			}
			cfg := []byte("terminal_output console\necho " + marker + "\nsleep 2\nhalt\n")
			root := &fat.Dir{}
			for p, data := range map[string][]byte{
				"EFI/debian/grub.cfg": cfg, // the prefix Debian's monolithic GRUB reads
				"EFI/BOOT/grub.cfg":   cfg,
			} {
				if err := root.AddFile(p, data); err != nil {
					t.Fatal(err)
				}
			}
			st, err := os.Stat(grubEFI)
			if err != nil {
				t.Fatal(err)
			}
			if err := root.AddFileFrom("EFI/BOOT/BOOTX64.EFI", st.Size(), func() (io.ReadCloser, error) { return os.Open(grubEFI) }); err != nil {
				t.Fatal(err)
			}
			esp := tab.Partitions[0]
			part := io.NewOffsetWriter(f, esp.Offset())
			if err := fat.Write(part, esp.Size, "COS_GRUB", root, fat.Options{HiddenSectors: uint32(esp.Offset() / gpt.SectorSize)}); err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(dir, "disk.qcow2")
			out, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			if err := qcow2.Convert(out, f, diskSize, qcow2.Options{}); err != nil {
				t.Fatal(err)
			}
			out.Close()
			f.Close()

			varsCopy := filepath.Join(dir, "vars.fd")
			b, err := os.ReadFile(vars)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(varsCopy, b, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
				"-machine", "q35", "-m", "512", "-nographic", "-no-reboot", "-net", "none",
				"-drive", "if=pflash,format=raw,readonly=on,file="+code,
				"-drive", "if=pflash,format=raw,file="+varsCopy,
				"-drive", "if=virtio,format=qcow2,file="+img)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = cmd.Stdout
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			var log strings.Builder
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				fmt.Fprintln(&log, sc.Text())
				if strings.Contains(sc.Text(), marker) {
					t.Logf("GRUB from the %s printed the marker after %v", tc.name, time.Since(start).Round(time.Second))
					return
				}
			}
			t.Fatalf("no %q on the serial console:\n%s", marker, log.String())
		})
	}
}
