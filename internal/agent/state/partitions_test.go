package state

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/host"
)

func TestPartitionStates(t *testing.T) {
	h := host.New(t.TempDir())
	dev := filepath.Join(h.Root, "dev")
	for _, d := range []string{"disk/by-label", "disk/by-uuid", "disk/by-partlabel"} {
		os.MkdirAll(filepath.Join(dev, d), 0o755)
	}
	for name, labels := range map[string][3]string{"vda2": {"COS_OEM", "1111-oem", "oem"}, "vda5": {"COS_PERSISTENT", "5555-per", "persistent"}, "vda4": {"COS_STATE", "4444-sta", "state"}} {
		os.WriteFile(filepath.Join(dev, name), nil, 0o644)
		os.Symlink("../../"+name, filepath.Join(dev, "disk/by-label", labels[0]))
		os.Symlink("../../"+name, filepath.Join(dev, "disk/by-uuid", labels[1]))
		os.Symlink("../../"+name, filepath.Join(dev, "disk/by-partlabel", labels[2]))
		os.MkdirAll(filepath.Join(h.Sys, "class/block", name), 0o755)
		os.WriteFile(filepath.Join(h.Sys, "class/block", name, "size"), []byte("2048\n"), 0o644)
	}
	os.MkdirAll(filepath.Dir(h.Mounts), 0o755)
	os.WriteFile(h.Mounts, []byte(
		dev+"/vda4 /run/initramfs/cos-state ext4 ro 0 0\n"+
			dev+"/vda2 /oem ext4 rw 0 0\n"+
			dev+"/vda5 /usr/local ext4 rw 0 0\n"+
			dev+"/vda5 /etc/ssh ext4 rw 0 0\n"), 0o644)
	s := PartitionStates(h)
	want := map[string]string{
		"persistent": fmt.Sprint(map[string]any{"found": true, "name": dev + "/vda5", "label": "persistent", "filesystemlabel": "COS_PERSISTENT",
			"mount_point": "/usr/local", "mounted": true, "read_only": false, "type": "ext4", "size_bytes": int64(1 << 20), "uuid": "5555-per"}),
		"state": fmt.Sprint(map[string]any{"found": true, "name": dev + "/vda4", "label": "state", "filesystemlabel": "COS_STATE",
			"mount_point": "/run/initramfs/cos-state", "mounted": true, "read_only": true, "type": "ext4", "size_bytes": int64(1 << 20), "uuid": "4444-sta"}),
		"efi": fmt.Sprint(map[string]any{"found": false, "name": "", "label": "", "filesystemlabel": "COS_GRUB",
			"mount_point": "", "mounted": false, "read_only": false, "type": "", "size_bytes": int64(0), "uuid": ""}),
	}
	for k, w := range want {
		if got := fmt.Sprint(s[k]); got != w {
			t.Errorf("%s:\n got %s\nwant %s", k, got, w)
		}
	}
}
