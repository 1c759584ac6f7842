package mounttab

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestReadAndBelow(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mounts")
	os.WriteFile(p, []byte(`overlay / overlay rw,relatime 0 0
proc /proc proc rw 0 0
proc /srv/root/proc proc rw 0 0
/dev/sda1 /srv/root/my\040dir ext4 ro,relatime 0 0
/dev/sda1 /srv/rootfs ext4 rw 0 0
`), 0o644)
	mounts, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 5 || mounts[3].Target != "/srv/root/my dir" || !mounts[3].ReadOnly() || mounts[0].ReadOnly() || mounts[3].FSType != "ext4" {
		t.Errorf("Read = %+v", mounts)
	}
	if got, want := Below(mounts, "/srv/root"), map[string]bool{"/proc": true, "/my dir": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("Below = %v, want %v", got, want)
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("a missing table read without error")
	}
}

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{`a\040b`: "a b", `\134x`: `\x`, `t\011`: "t\t", `plain`: "plain", `bad\04`: `bad\04`, `\999`: `\999`} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDeviceResolvesMapperLinks: a /dev/mapper source is its dm device;
// any other source is itself.
func TestDeviceResolvesMapperLinks(t *testing.T) {
	for _, m := range []Mount{{Source: "/dev/vda5"}, {Source: "tmpfs"}, {Source: "/dev/mapper/no-such-device-kairos"}} {
		if got := m.Device(); got != m.Source {
			t.Errorf("Device of %s = %s", m.Source, got)
		}
	}
}
