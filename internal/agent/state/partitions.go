package state

import (
	"os"
	"path/filepath"
	"strings"
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
	if data, err := os.ReadFile(mounts); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			// The first mount of a device is where the layout put it;
			// later ones are binds of its subdirectories.
			if _, seen := mounted[f[0]]; !seen {
				mounted[f[0]] = unescapeMount(f[1])
			}
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

// unescapeMount undoes the octal escapes of /proc/self/mounts (\040 for a
// space).
func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}
