package deploy

import (
	"fmt"

	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/release"
)

// What grub boots from every system image (overlay/rootfs/etc/cos/grub.cfg
// loopback-mounts the image and loads these two).
const (
	KernelPath = "/boot/vmlinuz"
	InitrdPath = "/boot/initrd"
)

// CheckImage is what install and upgrade require of a source before they
// write anything: a Kairos image (its /etc/kairos-release, returned
// parsed) that grub can boot. The kernel and initrd are usually symlinks
// to versioned names; they are followed inside the tree, as grub follows
// them inside the image.
func CheckImage(root *fstree.Node) (map[string]string, error) {
	data, err := fstree.ReadFile(root, release.Path)
	if err != nil {
		return nil, fmt.Errorf("the image has no %s (%v): it is not a Kairos image", release.Path, err)
	}
	rel, err := release.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", release.Path, err)
	}
	for _, p := range []string{KernelPath, InitrdPath} {
		n, err := fstree.Lookup(root, p)
		switch {
		case err != nil:
			return nil, fmt.Errorf("the image has no %s (%v): grub could not boot it", p, err)
		case !n.Mode.IsRegular():
			return nil, fmt.Errorf("the image's %s is not a regular file (mode %v): grub could not boot it", p, n.Mode)
		case n.Size == 0:
			return nil, fmt.Errorf("the image's %s is empty: grub could not boot it", p)
		}
	}
	return rel, nil
}

// Arch is the architecture a kairos-release names, in Go's names as the
// agent itself knows its own (runtime.GOARCH): KAIROS_TARGETARCH, else
// KAIROS_ARCH; "" when it names none.
func Arch(rel map[string]string) string {
	a := rel["KAIROS_TARGETARCH"]
	if a == "" {
		a = rel["KAIROS_ARCH"]
	}
	// Images built by other tools write the kernel's names.
	switch a {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}
