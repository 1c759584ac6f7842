package disklayout

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// TestWriteESP: COS_GRUB holds the EFI partition's files of Boot.Files,
// and only those.
func TestWriteESP(t *testing.T) {
	b := &Boot{EFI: []EFIFile{{"BOOTX64.EFI", []byte("loader")}}, ESPMenu: []byte("esp menu"), StateMenu: []byte("state menu")}
	verifyESP(t, b, map[string][]byte{"EFI/BOOT/BOOTX64.EFI": []byte("loader"), "EFI/BOOT/grub.cfg": b.ESPMenu})
}

// TestWriteESPSigned: with the signed chain, shim is the loader, the
// signed GRUB and the key manager sit beside it, and the menu is also in
// the directory built into the signed GRUB.
func TestWriteESPSigned(t *testing.T) {
	assets := map[string][]byte{
		BootAssets + "/BOOTX64.EFI": []byte("shim"), BootAssets + "/grubx64.efi": []byte("signed grub"),
		BootAssets + "/mmx64.efi": []byte("mok manager"), BootAssets + "/" + GrubPrefixFile: []byte("/EFI/debian\n"),
	}
	efi, prefix, err := EFILoader(readMap(assets))
	if err != nil {
		t.Fatal(err)
	}
	if prefix != "EFI/debian" {
		t.Errorf("prefix %q, want EFI/debian", prefix)
	}
	b := &Boot{EFI: efi, GrubPrefix: prefix, ESPMenu: []byte("esp menu"), StateMenu: []byte("state menu")}
	if b.Loader() != "BOOTX64.EFI" {
		t.Errorf("loader %s", b.Loader())
	}
	verifyESP(t, b, map[string][]byte{
		"EFI/BOOT/BOOTX64.EFI": []byte("shim"), "EFI/BOOT/grubx64.efi": []byte("signed grub"), "EFI/BOOT/mmx64.efi": []byte("mok manager"),
		"EFI/BOOT/grub.cfg": b.ESPMenu, "EFI/debian/grub.cfg": b.ESPMenu,
	})
}

// TestEFILoaderRefuses: a prefix that is not an ESP directory, or one
// without the signed GRUB, is an error naming the file.
func TestEFILoaderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		grub   bool
		want   string
	}{
		{"outside EFI", "/boot/grub", true, "want an ESP directory"},
		{"dot dot", "/EFI/../x", true, "want an ESP directory"},
		{"space", "/EFI/a b", true, "want an ESP directory"},
		{"no grub", "/EFI/debian", false, "no grubx64.efi beside BOOTX64.EFI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assets := map[string][]byte{BootAssets + "/BOOTX64.EFI": []byte("shim"), BootAssets + "/" + GrubPrefixFile: []byte(tc.prefix)}
			if tc.grub {
				assets[BootAssets+"/grubx64.efi"] = []byte("grub")
			}
			_, _, err := EFILoader(readMap(assets))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	if _, _, err := EFILoader(readMap(nil)); err == nil || !strings.Contains(err.Error(), "no UEFI loader") {
		t.Fatalf("empty image: %v", err)
	}
}

func readMap(m map[string][]byte) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if d, ok := m[p]; ok {
			return d, nil
		}
		return nil, fs.ErrNotExist
	}
}

func verifyESP(t *testing.T, b *Boot, wantFiles map[string][]byte) {
	t.Helper()
	files, err := b.Files(nil, []byte("#cloud-config\n"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "esp.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &Part{Name: PartEFI, Label: LabelGrub, Start: 1 << 20, Size: 64 << 20}
	if err := f.Truncate(p.Size); err != nil {
		t.Fatal(err)
	}
	if err := WriteESP(f, p, files, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	want := fstree.Dir(0o755, 0)
	for p, data := range wantFiles {
		if err := want.Add(p, fstree.File(data, 0o644, 0), 0o755, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := fattest.Verify(img, want); err != nil {
		t.Error(err)
	}
}
