package state

import (
	"path/filepath"

	"github.com/kairos-io/kairos/internal/mounttab"
)

// Partitions of the installed layout, by the name `kairos-agent state`
// reports them under, and their file system labels.
var Partitions = []struct{ Name, Label string }{
	{"efi", "COS_GRUB"},
	{"oem", "COS_OEM"},
	{"recovery", "COS_RECOVERY"},
	{"state", "COS_STATE"},
	{"persistent", "COS_PERSISTENT"},
}

// PartitionValues reports each partition found by label: "<name>.device"
// (the block device) and "<name>.mountpoint" (where it is mounted, empty
// when it is not). byLabelDir is /dev/disk/by-label, mounts is
// /proc/self/mounts.
func PartitionValues(byLabelDir, mounts string) map[string]string {
	mounted := map[string]string{}
	table, _ := mounttab.Read(mounts) // no table: nothing is mounted
	for _, m := range table {
		// The first mount of a device is where the layout put it;
		// later ones are binds of its subdirectories.
		if _, seen := mounted[m.Source]; !seen {
			mounted[m.Source] = m.Target
		}
	}
	values := map[string]string{}
	for _, p := range Partitions {
		dev, err := filepath.EvalSymlinks(filepath.Join(byLabelDir, p.Label))
		if err != nil {
			continue
		}
		values[p.Name+".device"] = dev
		values[p.Name+".mountpoint"] = mounted[dev]
	}
	return values
}
