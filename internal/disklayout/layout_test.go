package disklayout

import (
	"strings"
	"testing"
)

func TestPlanContractSizes(t *testing.T) {
	img := ImageSize(900 * MiB)
	l, err := Plan(Input{ImageSize: img, DiskSize: 16 * GiB, BIOS: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Parts {
		names = append(names, p.Name+"="+p.Label)
	}
	if got := strings.Join(names, " "); got != "efi=COS_GRUB bios=COS_BIOS oem=COS_OEM recovery=COS_RECOVERY state=COS_STATE persistent=COS_PERSISTENT" {
		t.Fatalf("partitions %s", got)
	}
	if l.Parts[0].Start != MiB {
		t.Errorf("first partition at %d, want 1 MiB", l.Parts[0].Start)
	}
	if s := l.Part(PartState).Size; s != 3*img+stateSpare {
		t.Errorf("state %d MiB, want %d", s>>20, (3*img+stateSpare)>>20)
	}
	if s := l.Part(PartRecovery).Size; s != 2*img+recoverySpare {
		t.Errorf("recovery %d MiB", s>>20)
	}
	last := l.Parts[len(l.Parts)-1]
	if end := last.Start + last.Size; end > 16*GiB-33*512 || end < 16*GiB-2*MiB {
		t.Errorf("persistent ends at %d: does not take the rest of the disk", end)
	}
	if l.Index(PartOEM) != 3 || l.Index("nope") != 0 {
		t.Errorf("index oem %d", l.Index(PartOEM))
	}
}

func TestPlanOverridesAndRefusals(t *testing.T) {
	img := ImageSize(500 * MiB)
	l, err := Plan(Input{ImageSize: img, DiskSize: 32 * GiB, Sizes: Sizes{PartOEM: 128 * MiB, PartPersistent: 4 * GiB}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Part(PartOEM).Size != 128*MiB || l.Part(PartPersistent).Size != 4*GiB {
		t.Errorf("overrides not applied: oem %d persistent %d", l.Part(PartOEM).Size, l.Part(PartPersistent).Size)
	}
	if l.Part(PartBIOS) != nil {
		t.Error("bios partition without BIOS")
	}
	for _, c := range []struct {
		in   Input
		want string
	}{
		{Input{ImageSize: img, DiskSize: 2 * GiB}, "a disk of 2048 MiB is too small for this image: it needs at least"},
		{Input{ImageSize: img, DiskSize: 32 * GiB, Sizes: Sizes{PartState: img}}, "state partition of 600 MiB is too small: it must hold 1800 MiB"},
		{Input{ImageSize: img, DiskSize: 32 * GiB, Sizes: Sizes{PartEFI: GiB}}, "fixed size"},
		{Input{ImageSize: img, DiskSize: 8 * GiB, Sizes: Sizes{PartPersistent: 6 * GiB}}, "and 6144 MiB for COS_PERSISTENT"},
	} {
		if _, err := Plan(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Plan(%+v) = %v, want %q", c.in, err, c.want)
		}
	}
}

func TestDefaultDiskSize(t *testing.T) {
	l, err := Plan(Input{ImageSize: ImageSize(100 * MiB)})
	if err != nil {
		t.Fatal(err)
	}
	if l.DiskSize%GiB != 0 || l.Part(PartPersistent).Size < PersistentSize {
		t.Errorf("disk %d, persistent %d", l.DiskSize, l.Part(PartPersistent).Size)
	}
}

func TestMinDiskSizeIsTheRefusalLimit(t *testing.T) {
	in := Input{ImageSize: ImageSize(300 * MiB), BIOS: true}
	min, err := MinDiskSize(in)
	if err != nil {
		t.Fatal(err)
	}
	in.DiskSize = min
	if _, err := Plan(in); err != nil {
		t.Errorf("Plan at MinDiskSize: %v", err)
	}
	in.DiskSize = min - MiB
	if _, err := Plan(in); err == nil {
		t.Error("Plan below MinDiskSize accepted")
	}
	if _, err := MinDiskSize(Input{ImageSize: MiB, Sizes: Sizes{"home": MiB}}); err == nil || !strings.Contains(err.Error(), `unknown partition "home"`) {
		t.Errorf("unknown partition: %v", err)
	}
}
