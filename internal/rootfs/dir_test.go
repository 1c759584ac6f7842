package rootfs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/fstree"
)

// A dir: source that is a running system's root (suc-upgrade's container)
// must not carry the host's root mounted at /host, the pseudo file
// systems, or what is mounted below it. Before the fix the tree held
// /host/etc/secret, /proc's and /run's files and the mounted contents.
func TestDirSourceLeavesOutMountsAndPseudoDirs(t *testing.T) {
	root := t.TempDir()
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
	write("etc/kairos-release", "KAIROS_VERSION=v2\n")
	write("etc/hosts", "image hosts\n")
	write("host/etc/rancher/k3s/token", "host secret\n")
	write("proc/1/status", "x")
	write("run/secret", "x")
	write("tmp/scratch", "x")
	write("var/lib/data", "kept")
	write("mnt/data/under-mount", "hidden by the mount, still not read")
	// Mounts below the source: a tmpfs on /mnt/data and a file bound over
	// /etc/hosts, as a container runtime does.
	if err := unix.Mount("tmpfs", filepath.Join(root, "mnt/data"), "tmpfs", 0, ""); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	defer unix.Unmount(filepath.Join(root, "mnt/data"), unix.MNT_DETACH)
	os.WriteFile(filepath.Join(root, "mnt/data/mounted"), []byte("from the mount"), 0o644)
	other := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(other, []byte("pod hosts\n"), 0o644)
	if err := unix.Mount(other, filepath.Join(root, "etc/hosts"), "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	defer unix.Unmount(filepath.Join(root, "etc/hosts"), unix.MNT_DETACH)

	tree, err := OpenWith(context.Background(), "dir:"+root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	if data, err := fstree.ReadFile(tree.Root, "/var/lib/data"); err != nil || string(data) != "kept" {
		t.Errorf("/var/lib/data = %q, %v", data, err)
	}
	for _, gone := range []string{"/host/etc/rancher/k3s/token", "/proc/1/status", "/run/secret", "/tmp/scratch", "/mnt/data/mounted", "/etc/hosts"} {
		if _, err := fstree.Lookup(tree.Root, gone); err == nil {
			t.Errorf("%s is in the tree", gone)
		}
	}
	// The mount points themselves stay, empty.
	for _, dir := range []string{"/host", "/proc", "/run", "/tmp", "/mnt/data"} {
		n, err := fstree.Lookup(tree.Root, dir)
		if err != nil || !n.Mode.IsDir() || len(n.Children) != 0 {
			t.Errorf("%s: %v, want an empty directory", dir, err)
		}
	}
}
