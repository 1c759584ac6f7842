package state

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPartitionValues(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "dev")
	byLabel := filepath.Join(dev, "disk", "by-label")
	os.MkdirAll(byLabel, 0o755)
	for name, target := range map[string]string{"vda2": "COS_OEM", "vda5": "COS_PERSISTENT", "vda4": "COS_STATE"} {
		os.WriteFile(filepath.Join(dev, name), nil, 0o644)
		os.Symlink("../../"+name, filepath.Join(byLabel, target))
	}
	mounts := filepath.Join(dir, "mounts")
	os.WriteFile(mounts, []byte(
		dev+"/vda4 /run/initramfs/cos-state ext4 ro 0 0\n"+
			dev+"/vda2 /oem ext4 rw 0 0\n"+
			dev+"/vda5 /usr/local ext4 rw 0 0\n"+
			dev+"/vda5 /etc/ssh ext4 rw 0 0\n"), 0o644)
	v := PartitionValues(byLabel, mounts)
	want := map[string]string{
		"oem.device": dev + "/vda2", "oem.mountpoint": "/oem",
		"persistent.device": dev + "/vda5", "persistent.mountpoint": "/usr/local",
		"state.device": dev + "/vda4", "state.mountpoint": "/run/initramfs/cos-state",
	}
	for k, w := range want {
		if v[k] != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	if _, ok := v["efi.device"]; ok {
		t.Errorf("efi reported without a COS_GRUB label: %v", v)
	}
}
