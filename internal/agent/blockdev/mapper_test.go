package blockdev

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMapperPath(t *testing.T) {
	root := t.TempDir()
	h := Devices{Sys: filepath.Join(root, "sys"), Dev: filepath.Join(root, "dev")}
	write := func(p, data string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/class/block/dm-1/dm/name", "kairos-persistent\n")
	write("dev/mapper/kairos-persistent", "")
	write("sys/class/block/dm-2/dm/name", "gone\n")
	write("sys/class/block/dm-3/dm/name", "../../etc\n")
	for _, c := range []struct{ in, want string }{
		{h.Dev + "/dm-1", h.Dev + "/mapper/kairos-persistent"},
		{h.Dev + "/dm-2", h.Dev + "/dm-2"}, // no /dev/mapper link
		{h.Dev + "/dm-3", h.Dev + "/dm-3"}, // a name that is a path
		{h.Dev + "/dm-9", h.Dev + "/dm-9"}, // not in /sys
		{h.Dev + "/vda3", h.Dev + "/vda3"},
	} {
		if got := h.MapperPath(c.in); got != c.want {
			t.Errorf("MapperPath(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
