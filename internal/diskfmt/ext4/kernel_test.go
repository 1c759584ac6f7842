package ext4

import (
	"bytes"
	"fmt"
	"github.com/kairos-io/kairos/internal/fstree"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// mountImage loop-mounts img (read-only unless rw) and unmounts it when
// the test ends.
func mountImage(t *testing.T, img string, rw bool) string {
	t.Helper()
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := "loop,ro"
	if rw {
		opts = "loop"
	}
	if out, err := exec.Command("mount", "-t", "ext4", "-o", opts, img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", img, err, out)
	}
	mounted[dir] = true
	t.Cleanup(func() {
		if mounted[dir] {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, out)
			}
			delete(mounted, dir)
		}
	})
	return dir
}

// mounted are the mount points of this test binary still mounted (tests
// do not run in parallel).
var mounted = map[string]bool{}

func umount(t *testing.T, dir string) {
	t.Helper()
	if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
		t.Fatalf("umount %s: %v\n%s", dir, err, out)
	}
	delete(mounted, dir)
}

// checkWithKernel mounts img and compares what the kernel shows, read back
// with DirSource, with the tree written: every entry's type, mode, owner,
// mtime, size, content, symlink target, device numbers, xattrs, and which
// names are hardlinks of each other.
func checkWithKernel(t *testing.T, img string, want *fstree.Node) {
	t.Helper()
	dir := mountImage(t, img, false)
	got, err := fstree.DirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !hasChild(want.Children, "lost+found") {
		var kept []*fstree.Node
		for _, c := range got.Children {
			if c.Name == "lost+found" {
				if !c.Mode.IsDir() || c.Mode.Perm() != 0o700 || len(c.Children) != 0 {
					t.Errorf("lost+found: mode %v with %d entries", c.Mode, len(c.Children))
				}
				continue
			}
			kept = append(kept, c)
		}
		got.Children = kept
	}
	wantLinks, gotLinks := map[uint64][]string{}, map[uint64][]string{}
	compareNodes(t, "/", want, got, wantLinks, gotLinks)
	if w, g := linkGroups(wantLinks), linkGroups(gotLinks); w != g {
		t.Errorf("hardlinks differ:\nwritten: %s\nkernel:  %s", w, g)
	}
}

func compareNodes(t *testing.T, path string, want, got *fstree.Node, wantLinks, gotLinks map[uint64][]string) {
	t.Helper()
	if want.Mode != got.Mode || want.UID != got.UID || want.GID != got.GID || want.ModTime != got.ModTime {
		t.Errorf("%s: mode %v uid %d gid %d mtime %d, want %v %d %d %d", path,
			got.Mode, got.UID, got.GID, got.ModTime, want.Mode, want.UID, want.GID, want.ModTime)
	}
	if want.LinkID != 0 {
		wantLinks[want.LinkID] = append(wantLinks[want.LinkID], path)
	}
	if got.LinkID != 0 {
		gotLinks[got.LinkID] = append(gotLinks[got.LinkID], path)
	}
	if fmt.Sprint(sortedXattrs(want.Xattrs)) != fmt.Sprint(sortedXattrs(got.Xattrs)) {
		t.Errorf("%s: xattrs %q, want %q", path, sortedXattrs(got.Xattrs), sortedXattrs(want.Xattrs))
	}
	switch {
	case want.Mode.IsRegular():
		if got.Size != want.Size {
			t.Errorf("%s: size %d, want %d", path, got.Size, want.Size)
		} else if !sameContent(t, want, got) {
			t.Errorf("%s: content differs", path)
		}
	case want.Mode.IsDir():
		wc, gc := sortedChildren(want), sortedChildren(got)
		if names(wc) != names(gc) {
			t.Errorf("%s: entries\n%s\nwant\n%s", path, names(gc), names(wc))
			return
		}
		for i := range wc {
			compareNodes(t, strings.TrimSuffix(path, "/")+"/"+wc[i].Name, wc[i], gc[i], wantLinks, gotLinks)
		}
	}
	if want.Target != got.Target || want.DevMajor != got.DevMajor || want.DevMinor != got.DevMinor {
		t.Errorf("%s: target %q device %d:%d, want %q %d:%d", path, got.Target, got.DevMajor, got.DevMinor,
			want.Target, want.DevMajor, want.DevMinor)
	}
}

func sameContent(t *testing.T, a, b *fstree.Node) bool {
	t.Helper()
	if a.Size == 0 {
		return true
	}
	ra, err := a.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	rb, err := b.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	ba, bb := cmpBufs[0][:], cmpBufs[1][:]
	for {
		na, ea := io.ReadFull(ra, ba)
		nb, eb := io.ReadFull(rb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return (ea == nil) == (eb == nil)
		}
	}
}

// cmpBufs are sameContent's buffers, allocated once: thousands of small
// files are compared.
var cmpBufs [2][1 << 20]byte

func sortedXattrs(m map[string][]byte) []string {
	var s []string
	for k, v := range m {
		s = append(s, fmt.Sprintf("%s=%x", k, v))
	}
	sort.Strings(s)
	return s
}

func sortedChildren(n *fstree.Node) []*fstree.Node {
	c := append([]*fstree.Node(nil), n.Children...)
	sort.Slice(c, func(i, j int) bool { return c[i].Name < c[j].Name })
	return c
}

func names(c []*fstree.Node) string {
	s := make([]string, len(c))
	for i, n := range c {
		s[i] = n.Name
	}
	return strings.Join(s, " ")
}

// linkGroups describes hardlink groups of more than one name, whatever
// their LinkIDs.
func linkGroups(m map[uint64][]string) string {
	var groups []string
	for _, paths := range m {
		if len(paths) > 1 {
			sort.Strings(paths)
			groups = append(groups, strings.Join(paths, "="))
		}
	}
	sort.Strings(groups)
	return strings.Join(groups, " ")
}
