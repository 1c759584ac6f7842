package artifacts

import (
	"context"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/diskfmt/iso9660/isotest"
	"github.com/kairos-io/kairos/internal/diskfmt/squashfs/squashfstest"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/overlay"
)

func file(name, data string) *fstree.Node {
	return &fstree.Node{Name: name, Mode: 0o644, Size: int64(len(data)), Open: fstree.BytesOpener([]byte(data))}
}

func dir(name string, children ...*fstree.Node) *fstree.Node {
	return &fstree.Node{Name: name, Mode: fs.ModeDir | 0o755, Children: children}
}

// image is a minimal Kairos-like tree: release file, kernel behind a
// symlink as Debian has it, initrd behind an absolute symlink.
func image(withInitrd bool) *fstree.Node {
	boot := dir("boot",
		&fstree.Node{Name: "vmlinuz", Mode: fs.ModeSymlink | 0o777, Target: "vmlinuz-6.1.0"},
		file("vmlinuz-6.1.0", "KERNEL"),
		file("initrd-6.1.0", "INITRD"),
	)
	if withInitrd {
		boot.Children = append(boot.Children, &fstree.Node{Name: "initrd", Mode: fs.ModeSymlink | 0o777, Target: "/boot/initrd-6.1.0"})
	}
	return dir("", boot, dir("etc", file("kairos-release", "KAIROS_VERSION=\"v1\"\nKAIROS_ARTIFACT=\"kairos-test-v1\"\n")))
}

func TestNetbootAndRecovery(t *testing.T) {
	out := t.TempDir()
	files, err := Run(context.Background(), image(true), out, Profile{Kinds: []string{KindRecovery, KindNetboot}, NetbootURL: "http://10.0.2.2:8080"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	want := "kairos-test-v1.squashfs kairos-test-v1.squashfs.sha256 kairos-test-v1-kernel kairos-test-v1-kernel.sha256 kairos-test-v1-initrd kairos-test-v1-initrd.sha256 kairos-test-v1.ipxe kairos-test-v1.ipxe.sha256"
	if strings.Join(names, " ") != want {
		t.Errorf("files %v, want %s", names, want)
	}
	if k, _ := os.ReadFile(filepath.Join(out, "kairos-test-v1-kernel")); string(k) != "KERNEL" {
		t.Errorf("kernel %q", k)
	}
	if k, _ := os.ReadFile(filepath.Join(out, "kairos-test-v1-initrd")); string(k) != "INITRD" {
		t.Errorf("initrd %q", k)
	}
	ipxe, _ := os.ReadFile(filepath.Join(out, "kairos-test-v1.ipxe"))
	for _, s := range []string{"set base-url http://10.0.2.2:8080", "kernel ${base-url}/kairos-test-v1-kernel root=live:${base-url}/kairos-test-v1.squashfs", "initrd ${base-url}/kairos-test-v1-initrd"} {
		if !strings.Contains(string(ipxe), s) {
			t.Errorf("ipxe lacks %q:\n%s", s, ipxe)
		}
	}
	check := exec.Command("sha256sum", "-c", "kairos-test-v1.squashfs.sha256", "kairos-test-v1-kernel.sha256")
	check.Dir = out
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("sha256sum -c: %v\n%s", err, out)
	}
	// The image's tree, /boot/vmlinuz -> vmlinuz-6.1.0 included.
	if err := squashfstest.Verify(filepath.Join(out, "kairos-test-v1.squashfs"), image(true), squashfstest.Options{}); err != nil {
		t.Error(err)
	}
	// Booted media: small blocks (a page fault decompresses one block).
	sb, _ := os.ReadFile(filepath.Join(out, "kairos-test-v1.squashfs"))
	if len(sb) < 96 {
		t.Errorf("squashfs of %d bytes: no superblock", len(sb))
	} else if bs := binary.LittleEndian.Uint32(sb[12:16]); bs != BootBlockSize {
		t.Errorf("squashfs block size %d, want %d", bs, BootBlockSize)
	}
	for comp, want := range map[string]int{"": BootBlockSize, "gzip": BootBlockSize, "zstd": 1 << 20, "xz": 1 << 20} {
		if got := blockSize(comp); got != want {
			t.Errorf("blockSize(%q) = %d, want %d", comp, got, want)
		}
	}
}

// The iPXE script's serial console is the image's architecture's: a PC's
// 16550 (ttyS0), an arm64 machine's PL011 (ttyAMA0).
func TestNetbootConsole(t *testing.T) {
	for arch, want := range map[string]string{"amd64": "console=ttyS0", "arm64": "console=ttyAMA0", "": "console=ttyS0"} {
		img := image(true)
		rel := "KAIROS_VERSION=\"v1\"\nKAIROS_ARTIFACT=\"kairos-test-v1\"\nKAIROS_TARGETARCH=\"" + arch + "\"\n"
		img.Children[1] = dir("etc", file("kairos-release", rel))
		out := t.TempDir()
		if _, err := Run(context.Background(), img, out, Profile{Kinds: []string{KindNetboot}}); err != nil {
			t.Fatal(err)
		}
		ipxe, _ := os.ReadFile(filepath.Join(out, "kairos-test-v1.ipxe"))
		if !strings.Contains(string(ipxe), want+"\n") || strings.Count(string(ipxe), "console=") != 1 {
			t.Errorf("%s image: iPXE script lacks %s:\n%s", arch, want, ipxe)
		}
	}
}

func TestBadInput(t *testing.T) {
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	for _, tc := range []struct {
		name string
		root *fstree.Node
		dir  string
		p    Profile
		want string
	}{
		{"kind", image(true), t.TempDir(), Profile{Kinds: []string{"floppy"}}, "valid: iso, recovery, netboot"},
		{"not kairos", dir("", file("hello", "x")), t.TempDir(), Profile{Kinds: []string{KindRecovery}}, "not a Kairos image"},
		{"output", image(true), filepath.Join(notDir, "out"), Profile{Kinds: []string{KindRecovery}}, "output directory"},
		{"no initrd", image(false), t.TempDir(), Profile{Kinds: []string{KindNetboot}}, "no /boot/initrd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.root, tc.dir, tc.p)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			partials, _ := filepath.Glob(filepath.Join(tc.dir, "*.partial"))
			if len(partials) > 0 {
				t.Errorf("partial files left: %v", partials)
			}
		})
	}
}

// bootable adds the boot assets the finalize step leaves in an image.
func bootable(root *fstree.Node) *fstree.Node {
	bigFile := func(name string, size int, fill byte) *fstree.Node {
		return file(name, strings.Repeat(string([]byte{fill}), size))
	}
	root.Children = append(root.Children, dir("usr", dir("lib", dir("kairos", dir("boot",
		bigFile("BOOTX64.EFI", 300<<10, 'E'),
		bigFile("eltorito.img", 32<<10, 'B'),
		bigFile("boot_hybrid.img", 512, 'M'),
	)))))
	return root
}

func TestISO(t *testing.T) {
	out := t.TempDir()
	files, err := Run(context.Background(), bootable(image(true)), out, Profile{Kinds: []string{KindISO}, CloudConfig: []byte("#cloud-config\nhostname: iso-test\n")})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// Only the ISO and its checksum: the root squashfs and ESP were temporary.
	if strings.Join(names, " ") != "kairos-test-v1.iso kairos-test-v1.iso.sha256" || len(files) != 2 {
		t.Errorf("output directory holds %v (files %v)", names, files)
	}
	iso := filepath.Join(out, "kairos-test-v1.iso")
	report, err := isotest.Report(iso)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"El Torito boot img :   1  BIOS", "El Torito boot img :   2  UEFI", "Volume id    : 'COS_LIVE'", "GPT partname local :   2  EFI boot partition"} {
		if !strings.Contains(report, want) {
			t.Errorf("xorriso report lacks %q:\n%s", want, report)
		}
	}
	x := t.TempDir()
	if err := isotest.Extract(iso, x); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"config.yaml": "hostname: iso-test", "boot/kernel": "KERNEL", "boot/initrd": "INITRD", "boot/grub/grub.cfg": "COS_LIVE"} {
		if got, _ := os.ReadFile(filepath.Join(x, p)); !strings.Contains(string(got), want) {
			t.Errorf("/%s = %.80q, want it to contain %q", p, got, want)
		}
	}
	if err := squashfstest.Verify(filepath.Join(x, "rootfs.squashfs"), bootable(image(true)), squashfstest.Options{}); err != nil {
		t.Errorf("rootfs.squashfs: %v", err)
	}
	if fd, err := exec.Command("fdisk", "-l", iso).CombinedOutput(); err != nil || !strings.Contains(string(fd), "EFI System") {
		t.Errorf("fdisk -l: %v\n%s", err, fd)
	}
	// The EFI partition must hold the whole FAT file system it advertises.
	st, err := os.Stat(filepath.Join(x, "boot/uefi.img"))
	if err != nil || st.Size() < 4<<20 {
		t.Errorf("ESP image is %d bytes, want the full 4 MiB file system (%v)", st.Size(), err)
	}
	// The ESP is clean (fsck.vfat) and holds the loader and the menu.
	esp := dir("", dir("EFI", dir("BOOT", file("BOOTX64.EFI", strings.Repeat("E", 300<<10)))))
	menus, _ := overlay.Tree("iso")
	for _, m := range menus {
		if m.Path == "EFI/BOOT/grub.cfg" {
			esp.Add(m.Path, fstree.File(m.Data, 0o644, 0), 0o755, 0)
		}
	}
	if err := fattest.Verify(filepath.Join(x, "boot/uefi.img"), esp); err != nil {
		t.Error(err)
	}
}

// An image's KAIROS_ARTIFACT is untrusted: it must neither lead files out
// of the output directory nor add lines to the iPXE script. Before the
// check, "../../x/evil" wrote evil-kernel, evil.squashfs... two levels up.
func TestHostileNames(t *testing.T) {
	for _, tc := range []struct{ release, name, url, want string }{
		{release: "../../x/evil", want: "KAIROS_ARTIFACT"},
		{release: "evil\nshell", want: "KAIROS_ARTIFACT"},
		{release: "..", want: "KAIROS_ARTIFACT"},
		{release: "ok", name: "../evil", want: "--name"},
		{release: "ok", name: "a/b", want: "--name"},
		{release: "ok", url: "http://h/x\nshell", want: "--netboot-url"},
		{release: "ok", url: "file:///etc", want: "--netboot-url"},
	} {
		parent := t.TempDir()
		out := filepath.Join(parent, "a", "b")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		root := dir("", dir("boot", file("vmlinuz", "K"), file("initrd", "I")),
			dir("etc", file("kairos-release", "KAIROS_ARTIFACT="+strconv.Quote(tc.release)+"\n")))
		_, err := Run(context.Background(), root, out, Profile{Kinds: []string{KindNetboot}, Name: tc.name, NetbootURL: tc.url})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("release %q name %q url %q: err %v, want one naming %s", tc.release, tc.name, tc.url, err, tc.want)
		}
		// Nothing was written anywhere: not in out, not above it.
		filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				t.Errorf("release %q: %s was written", tc.release, p)
			}
			return nil
		})
	}
}

// A dracut image keeps its initrd's network part (NIC drivers, DHCP,
// livenet) beside it: the netboot initrd is the initrd, zeros to a 4-byte
// boundary, then that part, which the kernel unpacks over it. (The ISO and
// the disks copy /boot/initrd alone.)
func TestNetbootInitrdAddsNetworkPart(t *testing.T) {
	root := image(true)
	root.Children = append(root.Children, dir("usr", dir("lib", dir("kairos", dir("boot", file("initrd-network", "NET"))))))
	out := t.TempDir()
	if _, err := Run(context.Background(), root, out, Profile{Kinds: []string{KindNetboot}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "kairos-test-v1-initrd")); string(got) != "INITRD\x00\x00NET" {
		t.Errorf("netboot initrd %q, want the initrd, padding, the network part", got)
	}
}
