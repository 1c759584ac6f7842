package state

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/host"
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

// PartitionStates describes each partition of the layout, in upstream's
// keys: found (its label exists), name (the block device), label (the
// partition's GPT name), filesystemlabel, mount_point and mounted (its
// first mount: later ones are binds of its directories), read_only, type
// (the file system), size_bytes and uuid (the file system's).
func PartitionStates(h *host.Host) map[string]map[string]any {
	first := map[string]mounttab.Mount{}
	table, _ := mounttab.Read(h.Mounts) // no table: nothing is mounted
	for _, m := range table {
		src := m.Device()
		if _, seen := first[src]; !seen {
			first[src] = m
		}
	}
	byDir := func(dir string) map[string]string { // device -> name in /dev/disk/<dir>
		out := map[string]string{}
		entries, _ := os.ReadDir(filepath.Join(filepath.Dir(h.ByLabel), dir))
		for _, e := range entries {
			if dev, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(h.ByLabel), dir, e.Name())); err == nil {
				out[dev] = e.Name()
			}
		}
		return out
	}
	uuids, partlabels := byDir("by-uuid"), byDir("by-partlabel")
	out := map[string]map[string]any{}
	for _, p := range Partitions {
		s := map[string]any{"found": false, "name": "", "label": "", "filesystemlabel": p.Label, "mount_point": "",
			"mounted": false, "read_only": false, "type": "", "size_bytes": int64(0), "uuid": ""}
		out[p.Name] = s
		dev, err := filepath.EvalSymlinks(filepath.Join(h.ByLabel, p.Label))
		if err != nil {
			continue
		}
		s["found"], s["name"], s["uuid"], s["label"] = true, dev, uuids[dev], partlabels[dev]
		if b, err := os.ReadFile(filepath.Join(h.Sys, "class/block", filepath.Base(dev), "size")); err == nil {
			if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				s["size_bytes"] = n * 512
			}
		}
		if m, ok := first[dev]; ok {
			s["mount_point"], s["mounted"], s["type"] = m.Target, true, m.FSType
			s["read_only"] = slices.Contains(m.Options, "ro")
		}
	}
	return out
}
