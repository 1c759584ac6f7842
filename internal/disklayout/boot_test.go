package disklayout

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kairos-io/kairos/internal/diskfmt/fat/fattest"
	"github.com/kairos-io/kairos/internal/fstree"
)

// TestWriteESP: COS_GRUB holds the EFI partition's files of Boot.Files,
// and only those.
func TestWriteESP(t *testing.T) {
	b := &Boot{EFIName: "BOOTX64.EFI", EFI: []byte("loader"), ESPMenu: []byte("esp menu"), StateMenu: []byte("state menu")}
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
	want.Add("EFI/BOOT/BOOTX64.EFI", fstree.File(b.EFI, 0o644, 0), 0o755, 0)
	want.Add("EFI/BOOT/grub.cfg", fstree.File(b.ESPMenu, 0o644, 0), 0o755, 0)
	if err := fattest.Verify(img, want); err != nil {
		t.Error(err)
	}
}
