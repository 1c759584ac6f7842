package repart

import (
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/diskfmt/gpt"
)

// disk is a 100 MiB disk written for 64 MiB (a raw image flashed on a
// bigger disk): oem 8 MiB, persistent up to the old end.
func disk(t *testing.T) Disk {
	t.Helper()
	tab := gpt.Table{DiskGUID: gpt.LabelGUID("d"), Partitions: []gpt.Partition{
		{Name: "oem", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("COS_OEM"), Size: 8 * mib},
		{Name: "persistent", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("COS_PERSISTENT")},
	}}
	if err := tab.Layout(64 * mib); err != nil {
		t.Fatal(err)
	}
	// The backup is at the end already (an earlier boot moved it): the
	// cases below start from a table that needs nothing by itself.
	return Disk{Disk: &gpt.Disk{Table: tab, Entries: gpt.EntryCount, BackupLBA: 100*mib/gpt.SectorSize - 1}, Size: 100 * mib,
		FSLabels: []string{"COS_OEM", "COS_PERSISTENT"}, FSBytes: []int64{8 * mib, 54 * mib}}
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout string
		// want: partition sizes in MiB after the change; nil for no change
		want []int64
		grow bool
		add  []string // file systems made
		err  string
	}{
		{name: "grow to the end", layout: "expand_partition: {size: 0}", want: []int64{8, 90}, grow: true},
		{name: "grow to a size", layout: "expand_partition: {size: 70}", want: []int64{8, 70}, grow: true},
		{name: "already that size", layout: "expand_partition: {size: 54}"},
		{name: "never shrink", layout: "expand_partition: {size: 20}", err: "never shrunk"},
		{name: "too big", layout: "expand_partition: {size: 95}", err: "can have at most 90 MiB"},
		{name: "add", layout: "add_partitions: [{fsLabel: COS_DATA, pLabel: data, size: 10, filesystem: EXT4}]", want: []int64{8, 54, 10}, add: []string{"ext4"}},
		{name: "add the rest, ext2 by default", layout: "add_partitions: [{fsLabel: COS_DATA}]", want: []int64{8, 54, 36}, add: []string{"ext2"}},
		{name: "grow then add", layout: "expand_partition: {size: 60}\nadd_partitions: [{fsLabel: A, size: 5}, {fsLabel: B}]", want: []int64{8, 60, 5, 25}, grow: true, add: []string{"ext2", "ext2"}},
		{name: "label on the disk: done on an earlier boot", layout: "add_partitions: [{fsLabel: COS_OEM, size: 10}]"},
		{name: "no room after growing", layout: "expand_partition: {size: 0}\nadd_partitions: [{fsLabel: A}]", err: "0 MiB are free"},
		{name: "too big to add", layout: "add_partitions: [{fsLabel: A, size: 40}]", err: "40 MiB do not fit"},
		{name: "unknown file system", layout: "add_partitions: [{fsLabel: A, filesystem: ntfs}]", err: `filesystem "ntfs" is not one of ext2, ext3, ext4, fat, swap, vfat, xfs`},
		{name: "label too long", layout: "add_partitions: [{fsLabel: ABCDEFGHIJKLM, filesystem: xfs}]", err: "xfs labels hold 12"},
		{name: "slash in label", layout: "add_partitions: [{fsLabel: a/b}]", err: "has a '/'"},
		{name: "a size that overflows", layout: "add_partitions: [{fsLabel: A, size: 17592186044417}]", err: "is not a size"},
		{name: "an expand that overflows", layout: "expand_partition: {size: 9223372036854775809}", err: "do not fit"},
		{name: "long pLabel", layout: "add_partitions: [{fsLabel: A, pLabel: " + strings.Repeat("p", 37) + "}]", err: "GPT names hold 36"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, diags := cloudconfig.Parse("layout.yaml", []byte("#cloud-config\nstages:\n  rootfs:\n    - layout:\n        device: {label: COS_PERSISTENT}\n"+indent(tc.layout, "        ")))
			if err := diags.Err(); err != nil {
				t.Fatal(err)
			}
			d := disk(t)
			before := d.Partitions[1]
			c, err := Plan(d, cfg.Config.Stages["rootfs"][0].Layout)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Plan: %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Partitions[1] != before {
				t.Error("Plan changed the disk it was given")
			}
			if tc.want == nil {
				if !c.Empty() {
					t.Errorf("change %+v, want none", c)
				}
				return
			}
			var got []int64
			for _, p := range c.Table.Partitions {
				got = append(got, p.Size/mib)
				if p.Start%gpt.Alignment != 0 {
					t.Errorf("partition %q starts at %d: not 1 MiB aligned", p.Name, p.Start)
				}
			}
			if !equal(got, tc.want) {
				t.Errorf("sizes %v MiB, want %v", got, tc.want)
			}
			if (c.Grow != nil) != tc.grow || (c.Grow != nil && c.Grow.Index != 1) {
				t.Errorf("grow %+v, want %v", c.Grow, tc.grow)
			}
			var fs []string
			for _, a := range c.Add {
				fs = append(fs, a.FileSystem)
			}
			if strings.Join(fs, ",") != strings.Join(tc.add, ",") {
				t.Errorf("made %v, want %v", fs, tc.add)
			}
			if err := c.Table.Validate(d.Size); err != nil {
				t.Error(err)
			}
		})
	}
}

// What an interrupted or earlier boot left: a backup table where the
// disk used to end, a file system smaller than its grown partition, a
// partition added without its file system. Each is finished, nothing
// else is done.
func TestPlanFinishesWhatWasLeft(t *testing.T) {
	grow := cloudconfig.Layout{Expand: &cloudconfig.Expand{}}
	grow.Expand.Size = 54 // what it has: no table change
	d := disk(t)
	d.BackupLBA = 64*mib/gpt.SectorSize - 1
	if c, err := Plan(d, grow); err != nil || !c.WriteTable || c.Grow != nil || c.GrowFS != -1 || len(c.Add) != 0 {
		t.Errorf("backup in the middle: %+v, %v", c, err)
	}
	d = disk(t)
	d.FromBackup = true
	if c, err := Plan(d, grow); err != nil || !c.WriteTable {
		t.Errorf("damaged primary: %+v, %v", c, err)
	}
	d = disk(t)
	d.FSBytes[1] = 20 * mib
	if c, err := Plan(d, grow); err != nil || c.WriteTable || c.GrowFS != 1 {
		t.Errorf("file system smaller than its partition: %+v, %v", c, err)
	}
	d = disk(t)
	d.Partitions = append(d.Partitions, gpt.Partition{Name: "data", Type: gpt.LinuxFilesystem, GUID: gpt.LabelGUID("COS_DATA"), Start: 63 * mib, Size: 10 * mib})
	add := cloudconfig.Layout{AddPartitions: []cloudconfig.AddPartition{{FSLabel: "COS_DATA", Size: 10}}}
	if c, err := Plan(d, add); err != nil || c.WriteTable || len(c.Add) != 1 || !c.Add[0].Existing || c.Add[0].Index != 2 {
		t.Errorf("partition without its file system: %+v, %v", c, err)
	}
}

func TestPlanRefusesOddTables(t *testing.T) {
	d := disk(t)
	d.Entries = 248
	if _, err := Plan(d, cloudconfig.Layout{Expand: &cloudconfig.Expand{}}); err == nil || !strings.Contains(err.Error(), "248 entries") {
		t.Errorf("Plan: %v", err)
	}
	// validate refuses it too; Plan does not rely on that.
	if _, err := Plan(disk(t), cloudconfig.Layout{AddPartitions: []cloudconfig.AddPartition{{PLabel: "data", Size: 10}}}); err == nil || !strings.Contains(err.Error(), "fsLabel is needed") {
		t.Errorf("Plan without fsLabel: %v", err)
	}
	d = disk(t)
	d.Partitions = nil
	if _, err := Plan(d, cloudconfig.Layout{Expand: &cloudconfig.Expand{}}); err == nil || !strings.Contains(err.Error(), "no partition to grow") {
		t.Errorf("Plan: %v", err)
	}
}

func TestUdevNames(t *testing.T) {
	for _, s := range []string{"COS_PERSISTENT", "my data", `a\b`, "ünï"} {
		if got := udevUnescape(udevEscape(s)); got != s {
			t.Errorf("%q -> %q -> %q", s, udevEscape(s), got)
		}
	}
	if got := udevEscape("my data/x"); got != `my\x20data\x2fx` {
		t.Errorf("udevEscape = %q", got)
	}
}

func indent(s, p string) string { return p + strings.ReplaceAll(s, "\n", "\n"+p) + "\n" }

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
