package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/tests/registry"
)

// TestInstallFromRegistry installs install.source oci:<ref>, pulled with
// go-containerregistry from a real registry over plain HTTP.
func TestInstallFromRegistry(t *testing.T) {
	need(t, "losetup", "mkfs.ext4", "tune2fs", "debugfs")
	tree := imageTree(t)
	os.WriteFile(filepath.Join(tree, "etc/from-registry"), []byte("pulled\n"), 0o644)
	reg := registry.Start(t, "127.0.0.1:5055")
	registry.PushDir(t, tree, reg.Addr+"/kairos/test:v9.9.9")

	dev := loopDisk(t, 3<<30)
	in := &Installer{Devices: blockdev.Of(host.System), WorkDir: t.TempDir(), LiveRoot: filepath.Join(t.TempDir(), "none"), Tmp: t.TempDir(), LockFile: lockFile(t)}
	src := "oci:" + reg.Addr + "/kairos/test:v9.9.9"
	missing := "oci:" + reg.Addr + "/kairos/missing:v1"
	if _, err := in.Plan(context.Background(), Options{Device: dev, Source: missing, AllowInsecure: true}); err == nil || !strings.Contains(err.Error(), "kairos/missing:v1: pulling") {
		t.Errorf("a missing image: %v", err)
	}
	plan, err := in.Plan(context.Background(), Options{Device: dev, Source: src, AllowInsecure: true})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	if err := in.Run(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	sh(t, "mount", "-o", "ro", dev+"p5", state)
	defer sh(t, "umount", state)
	if got, err := ext4test.ReadFile(filepath.Join(state, "cOS/active.img"), "/etc/from-registry"); !strings.Contains(string(got), "pulled") {
		t.Errorf("active.img is not the registry image: %q (%v)", got, err)
	}
}
