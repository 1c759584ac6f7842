// Package fattest judges FAT file system images with the reference tools,
// as go-containerregistry's validate judges images: Verify has fsck.vfat
// (dosfstools) check an image and mtools list and extract it, and compares
// what they see with the tree written. It does not use the writer's code:
// it is shared by the writer's tests and those of the packages writing
// EFI System Partitions.
package fattest

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/fstree"
)

// Verify checks the FAT image file img (a file system from its first
// byte) against want: fsck.vfat finds nothing to fix (Fsck), mdir lists
// exactly want's directories and files (List and Listing), and mcopy
// extracts every file with want's content. FAT keeps no modes, owners,
// times (of entries) or hardlinks: those are not compared; want may hold
// only directories and regular files.
func Verify(img string, want *fstree.Node) error {
	if _, err := Fsck(img); err != nil {
		return err
	}
	got, err := List(img)
	if err != nil {
		return err
	}
	if w := Listing(want); !slices.Equal(got, w) {
		return fmt.Errorf("mdir -/ of %s lists\n%s\nwant\n%s", img, strings.Join(got, "\n"), strings.Join(w, "\n"))
	}
	tmp, err := os.MkdirTemp("", "fattest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := Extract(img, tmp); err != nil {
		return err
	}
	tree, err := fstree.DirSource(tmp)
	if err != nil {
		return err
	}
	o := fstree.DiffOptions{IgnoreOwners: true, IgnoreTimes: true, IgnoreXattrs: true, IgnoreHardlinks: true}
	if err := fstree.Compare(typesOnly(want), typesOnly(tree), o); err != nil {
		return fmt.Errorf("mcopy extraction of %s differs from the tree written:\n%w", img, err)
	}
	return nil
}

// typesOnly copies a tree without permission bits, which FAT does not keep.
func typesOnly(n *fstree.Node) *fstree.Node {
	c := *n
	c.Mode = n.Mode.Type()
	c.Children = nil
	for _, k := range n.Children {
		c.Children = append(c.Children, typesOnly(k))
	}
	return &c
}

// Command is a reference tool's command in a UTF-8 locale (mtools converts
// long names to the locale's charset), without user mtools configuration.
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MTOOLSRC=/dev/null")
	return cmd
}

// Run runs a reference tool (Command) and returns its combined output,
// which failures include.
func Run(name string, args ...string) (string, error) {
	out, err := Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Fsck runs `fsck.vfat -n -v` (check only) on img and requires that it
// found nothing to fix. It returns the verbose report.
func Fsck(img string) (string, error) {
	out, err := Run("fsck.vfat", "-n", "-v", img)
	if err != nil {
		return out, err
	}
	for _, bad := range []string{"unchanged", "differ", "wrong", "Wrong", "Orphan", "Truncat", "Fixing", "Bad", "invalid", "Warning"} {
		if strings.Contains(out, bad) {
			return out, fmt.Errorf("fsck.vfat -n %s reports a problem (%q):\n%s", img, bad, out)
		}
	}
	return out, nil
}

// List is the tree of img as `mdir -/ -b` prints it: one full path per
// entry ("::/EFI/BOOT/BOOTX64.EFI"), directories with a trailing slash,
// sorted.
func List(img string) ([]string, error) {
	out, err := Run("mdir", "-i", img, "-/", "-b", "::")
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			paths = append(paths, l)
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// Listing is what List returns for an image holding tree.
func Listing(tree *fstree.Node) []string {
	var paths []string
	var walk func(d *fstree.Node, prefix string)
	walk = func(d *fstree.Node, prefix string) {
		for _, e := range d.Children {
			p := prefix + "/" + e.Name
			if e.Mode.Type() == fs.ModeDir {
				paths = append(paths, "::"+p+"/")
				walk(e, p)
			} else {
				paths = append(paths, "::"+p)
			}
		}
	}
	walk(tree, "")
	slices.Sort(paths)
	return paths
}

// Extract copies the whole file system of img into the directory dir
// with mcopy.
func Extract(img, dir string) error {
	_, err := Run("mcopy", "-s", "-n", "-i", img, "::/", filepath.Clean(dir)+"/")
	return err
}
