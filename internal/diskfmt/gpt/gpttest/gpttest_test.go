package gpttest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt/gpttest"
)

func TestVerify(t *testing.T) {
	const size = 64 << 20
	tab := gpt.Table{DiskGUID: gpt.LabelGUID("disk"), Partitions: []gpt.Partition{
		{Name: "efi system", Type: gpt.EFISystem, GUID: gpt.LabelGUID("a"), Size: 8 << 20, Attributes: gpt.AttrRequired},
		{Name: "data", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("b")},
	}}
	if err := tab.Layout(size); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "disk.raw")
	f, _ := os.Create(img)
	f.Truncate(size)
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := gpttest.Table{GUID: gpt.LabelGUID("disk").String(), Partitions: []gpttest.Partition{
		{Number: 1, First: 2048, Last: 18431, Code: "EF00", Name: "efi system", Type: gpt.EFISystem.String(),
			GUID: gpt.LabelGUID("a").String(), Attributes: "0000000000000001"},
		{Name: "data", Code: "8300"},
	}}
	if err := gpttest.Verify(img, want); err != nil {
		t.Fatal(err)
	}
	for msg, edit := range map[string]func(w *gpttest.Table){
		"disk GUID":                    func(w *gpttest.Table) { w.GUID = "X" },
		"2 partitions, want 3":         func(w *gpttest.Table) { w.Partitions = append(w.Partitions, gpttest.Partition{}) },
		"partition 2: Name data, want": func(w *gpttest.Table) { w.Partitions[1].Name = "dat" },
		"partition 1: Last 18431":      func(w *gpttest.Table) { w.Partitions[0].Last = 18432 },
		"partition 1: Attributes":      func(w *gpttest.Table) { w.Partitions[0].Attributes = "0000000000000000" },
	} {
		w := want
		w.Partitions = append([]gpttest.Partition(nil), want.Partitions...)
		edit(&w)
		if err := gpttest.Verify(img, w); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: %v", msg, err)
		}
	}
	// A damaged primary header: sgdisk -v reports it.
	f, _ = os.OpenFile(img, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, 512+16) // the header CRC
	f.Close()
	if err := gpttest.Verify(img, want); err == nil {
		t.Error("a damaged header verified")
	}
}
