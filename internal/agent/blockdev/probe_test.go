package blockdev

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeReferenceTools reads what the reference tools write: mkfs.ext4,
// mkfs.vfat (FAT16 and FAT32), cryptsetup (LUKS2), xorriso and mksquashfs.
func TestProbeReferenceTools(t *testing.T) {
	dir := t.TempDir()
	img := func(name string, mb int) string {
		p := filepath.Join(dir, name)
		if err := os.Truncate(createFile(t, p), int64(mb)<<20); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(stdin string, name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	ext4 := img("ext4", 16)
	run("", "mkfs.ext4", "-q", "-F", "-L", "COS_PERSISTENT", ext4)
	fat16 := img("fat16", 16)
	run("", "mkfs.vfat", "-F", "16", "-n", "COS_GRUB", fat16)
	fat32 := img("fat32", 64)
	run("", "mkfs.vfat", "-F", "32", "-n", "EFI", fat32)
	luks := img("luks", 24)
	run("secret-passphrase", "cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--label", "kairos-oem",
		"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", luks, "-")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644)
	iso := filepath.Join(dir, "iso")
	run("", "xorriso", "-as", "mkisofs", "-quiet", "-V", "COS_LIVE", "-o", iso, src)
	sq := filepath.Join(dir, "sq")
	run("", "mksquashfs", src, sq, "-quiet", "-no-progress")
	blank := img("blank", 1)

	for _, c := range []struct{ path, fstype, label string }{
		{ext4, "ext4", "COS_PERSISTENT"},
		{fat16, "vfat", "COS_GRUB"},
		{fat32, "vfat", "EFI"},
		{luks, "crypto_LUKS", "kairos-oem"},
		{iso, "iso9660", "COS_LIVE"},
		{sq, "squashfs", ""},
		{blank, "", ""},
	} {
		f, err := os.Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		fstype, label := Probe(f)
		f.Close()
		if fstype != c.fstype || label != c.label {
			t.Errorf("%s: Probe = %q, %q; want %q, %q", filepath.Base(c.path), fstype, label, c.fstype, c.label)
		}
	}
}

func createFile(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func TestLinkName(t *testing.T) {
	for in, want := range map[string]string{
		"COS_STATE": "COS_STATE", "kairos-oem": "kairos-oem", "a.b:c=d@e#f+g": "a.b:c=d@e#f+g",
		"": "", ".": "", "..": "", "../etc": "", "a/b": "", "with space": "", "é": "", strings.Repeat("a", 65): "",
	} {
		if got := LinkName(in); got != want {
			t.Errorf("LinkName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzProbe(f *testing.F) {
	f.Add([]byte("LUKS\xba\xbe\x00\x02"))
	f.Add([]byte("hsqs"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fstype, label := Probe(readerAt(data))
		if fstype == "" && label != "" {
			t.Fatalf("a label %q without a type", label)
		}
		LinkName(label)
	})
}

type readerAt []byte

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r)) {
		return 0, os.ErrClosed
	}
	return copy(p, r[off:]), nil
}

func TestVolumes(t *testing.T) {
	root := t.TempDir()
	h := Devices{Sys: filepath.Join(root, "sys"), Dev: filepath.Join(root, "dev")}
	dev := func(name string, sectors int, mkfs ...string) {
		t.Helper()
		os.MkdirAll(filepath.Join(h.Sys, "class/block", name), 0o755)
		os.WriteFile(filepath.Join(h.Sys, "class/block", name, "size"), []byte(fmt.Sprintf("%d\n", sectors)), 0o644)
		os.MkdirAll(h.Dev, 0o755)
		p := filepath.Join(h.Dev, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 16<<20); err != nil {
			t.Fatal(err)
		}
		if len(mkfs) > 0 {
			if out, err := exec.Command(mkfs[0], append(mkfs[1:], p)...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", mkfs, err, out)
			}
		}
	}
	dev("vda3", 32768, "mkfs.ext4", "-q", "-F", "-L", "COS_OEM")
	dev("vdb", 32768, "mkfs.vfat", "-n", "CIDATA")
	dev("vdc", 32768)                                       // no file system
	dev("sr0", 0)                                           // no medium
	dev("vdd", 32768, "mkfs.ext4", "-q", "-F", "-L", "a/b") // not a plain name
	got := h.Volumes()
	want := map[string]string{"COS_OEM": filepath.Join(h.Dev, "vda3"), "CIDATA": filepath.Join(h.Dev, "vdb")}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Volumes = %v, want %v", got, want)
	}
}
