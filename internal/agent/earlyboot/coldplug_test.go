package earlyboot

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseUevent(t *testing.T) {
	ev := ParseUevent([]byte("add@/devices/pci0000:00/0000:00:03.0/virtio1\x00ACTION=add\x00DEVPATH=/devices/pci0000:00/0000:00:03.0/virtio1\x00SUBSYSTEM=virtio\x00MODALIAS=virtio:d00000002v00001AF4\x00SEQNUM=1234\x00"))
	if ev["ACTION"] != "add" || ev["SUBSYSTEM"] != "virtio" || ev["MODALIAS"] != "virtio:d00000002v00001AF4" {
		t.Errorf("ParseUevent = %v", ev)
	}
	for _, msg := range []string{"libudev\x00\xfe\xed", "", "add"} {
		if ev := ParseUevent([]byte(msg)); ev != nil {
			t.Errorf("ParseUevent(%q) = %v, want nil", msg, ev)
		}
	}
}

// fakeNode is a /sys and /dev with block devices backed by files.
func fakeNode(t *testing.T) (sys, dev string) {
	t.Helper()
	root := t.TempDir()
	sys, dev = filepath.Join(root, "sys"), filepath.Join(root, "dev")
	mk := func(p string, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Two devices with drivers to load, one twice (two functions).
	mk(filepath.Join(sys, "devices/pci0000:00/0000:00:03.0/modalias"), "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n")
	mk(filepath.Join(sys, "devices/pci0000:00/0000:00:03.0/virtio1/modalias"), "virtio:d00000002v00001AF4\n")
	mk(filepath.Join(sys, "devices/pci0000:00/0000:00:04.0/virtio2/modalias"), "virtio:d00000002v00001AF4\n")
	// vda3: an ext4 labeled COS_OEM; loop0: the active image; dm-0: an
	// opened container; vda1: nothing known.
	ext4 := filepath.Join(dev, "vda3")
	mk(ext4, "")
	if err := os.Truncate(ext4, 8<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-L", "COS_OEM", ext4).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	mk(filepath.Join(sys, "class/block/vda3/partition"), "3\n")
	mk(filepath.Join(dev, "loop0"), "")
	mk(filepath.Join(sys, "class/block/loop0/loop/backing_file"), "/run/initramfs/cos-state/cOS/active.img\n")
	mk(filepath.Join(dev, "dm-0"), "")
	mk(filepath.Join(sys, "class/block/dm-0/dm/name"), "kairos-persistent\n")
	mk(filepath.Join(dev, "vda1"), "not a file system")
	mk(filepath.Join(sys, "class/block/vda1/partition"), "1\n")
	return sys, dev
}

func TestColdplugStart(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root (a kernel uevent socket); ./earthly.sh +test runs as root")
	}
	sys, dev := fakeNode(t)
	var mu sync.Mutex
	var loaded []string
	c := &Coldplug{Sys: sys, Dev: dev, Modprobe: func(a ...string) {
		mu.Lock()
		loaded = append(loaded, a...)
		mu.Unlock()
	}}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	c.load("virtio:d00000002v00001AF4") // an event for a device seen
	c.Stop()
	sort.Strings(loaded)
	want := []string{"pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00", "virtio:d00000002v00001AF4"}
	if !slices.Equal(loaded, want) {
		t.Errorf("modprobe got %q, want each alias once: %q", loaded, want)
	}
	for link, target := range map[string]string{
		"disk/by-label/COS_OEM":    "../../vda3",
		"disk/by-label/COS_ACTIVE": "../../loop0",
		"mapper/kairos-persistent": "../dm-0",
	} {
		if got, err := os.Readlink(filepath.Join(dev, link)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %q", link, got, err, target)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dev, "disk/by-label"))
	if len(entries) != 2 {
		t.Errorf("by-label has %d links, want 2 (vda1 and dm-0 have no label here)", len(entries))
	}
}

func TestDeleteContents(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"usr/bin/kairos-agent", "etc/x", "a/b/c/d"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644)
	}
	os.Symlink("usr/bin/kairos-agent", filepath.Join(root, "init"))
	// Another device (the new root, a mount) stays: a directory whose
	// device differs is not entered.
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		t.Fatal(err)
	}
	dev := st.Dev
	deleteContents(root, dev+1) // nothing is on that device
	if _, err := os.Stat(filepath.Join(root, "etc/x")); err != nil {
		t.Fatalf("deleted files of another device: %v", err)
	}
	deleteContents(root, dev)
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("left %v", entries)
	}
}

func TestParseDevname(t *testing.T) {
	got := ParseDevname([]byte("# Device nodes to trigger on-demand module loading.\nloop loop-control c10:237\ndm_mod mapper/control c10:236\nbad ../../etc/x c1:1\nodd x q1:2\nshort line\nblk sda b8:0\n"))
	want := []DevNode{{"loop-control", false, 10, 237}, {"mapper/control", false, 10, 236}, {"sda", true, 8, 0}}
	if !slices.Equal(got, want) {
		t.Errorf("ParseDevname = %v, want %v", got, want)
	}
}

func TestEncrypted(t *testing.T) {
	sys, dev := fakeNode(t)
	c := &Coldplug{Sys: sys, Dev: dev}
	if n, l := encrypted(c); n != "" {
		t.Fatalf("encrypted = %s (%s) on a node without LUKS", n, l)
	}
	hdr := make([]byte, 4096)
	copy(hdr, "LUKS\xba\xbe\x00\x02")
	copy(hdr[24:], "kairos-persistent")
	if err := os.WriteFile(filepath.Join(dev, "vda6"), hdr, 0o644); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(sys, "class/block/vda6"), 0o755)
	if n, l := encrypted(c); n != "vda6" || l != "kairos-persistent" {
		t.Errorf("encrypted = %q (%q), want vda6 (kairos-persistent)", n, l)
	}
}
