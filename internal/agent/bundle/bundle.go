// Package bundle installs bundles: images that add to a node, as upstream
// Kairos defines them. A target `run://<image>` is unpacked to a private
// directory where its run.sh runs (with CONTAINERDIR and BUNDLE_TARGET
// set); `container://<image>` and `docker://<image>` have their files
// copied into the root. The image comes from a registry, or with
// local_file from a `docker save` or OCI archive on disk (airgap).
package bundle

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/fstree"
	"github.com/kairos-io/kairos/internal/rootfs"
	"github.com/kairos-io/kairos/internal/safefile"
)

// Installer installs bundles on a root.
type Installer struct {
	// Root is where container:// bundles' files go ("" is "/"); run://
	// bundles run on the running system only.
	Root string
	// Tmp holds unpacked bundles while they install ("" is the system's).
	Tmp string
	// Insecure allows registries over plain HTTP (loopback always is).
	Insecure bool
	// Out gets progress and run.sh's output.
	Out io.Writer
}

// Schemes are the target kinds, as upstream spells them.
var Schemes = []string{"run://", "container://", "docker://"}

// Install installs every target of b, in order; the first failure stops
// it (the caller decides, with fail_on_bundles_errors, what that means).
func (in Installer) Install(ctx context.Context, b cloudconfig.Bundle) error {
	for _, t := range b.Targets {
		if err := in.InstallTarget(ctx, t, b.LocalFile); err != nil {
			return fmt.Errorf("bundle %s: %w", t, err)
		}
	}
	return nil
}

// InstallTarget installs one target (`run://quay.io/org/bundle:v1`).
func (in Installer) InstallTarget(ctx context.Context, target string, localFile bool) error {
	scheme, ref, ok := strings.Cut(target, "://")
	if !ok || ref == "" {
		return fmt.Errorf("not a bundle target: want %s<image>", strings.Join(Schemes, "<image>, "))
	}
	switch scheme {
	case "run", "container", "docker":
	default:
		return fmt.Errorf("%s:// bundles (luet packages) are not supported by this agent: use run:// or container://", scheme)
	}
	if scheme == "run" && in.root() != "/" {
		// run.sh installs into the system it runs on: the node itself.
		return fmt.Errorf("run:// bundles install on the running system: a root path (%s) is for container:// bundles", in.Root)
	}
	source := "docker-image://" + ref
	if localFile {
		abs, err := filepath.Abs(ref)
		if err != nil {
			return err
		}
		source = "docker-archive:" + abs
		if isOCIArchive(abs) {
			source = "oci-archive:" + abs
		}
	}
	fmt.Fprintf(in.out(), "kairos-agent: bundle %s: pulling %s\n", target, source)
	tree, err := rootfs.OpenWith(ctx, source, rootfs.Options{Tmp: in.Tmp, Insecure: in.Insecure})
	if err != nil {
		return err
	}
	defer tree.Close()
	if scheme != "run" {
		if err := in.copyInto(tree.Root); err != nil {
			return err
		}
		fmt.Fprintf(in.out(), "kairos-agent: bundle %s: files installed\n", target)
		return nil
	}
	dir, err := os.MkdirTemp(in.Tmp, "kairos-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := unpack(tree.Root, dir); err != nil {
		return err
	}
	if st, err := os.Lstat(filepath.Join(dir, "run.sh")); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("the image has no run.sh at its root: a run:// bundle needs one")
	}
	return in.runScript(ctx, dir, target)
}

func (in Installer) out() io.Writer {
	if in.Out == nil {
		return os.Stdout
	}
	return in.Out
}

func (in Installer) root() string {
	if in.Root == "" {
		return "/"
	}
	return in.Root
}

// runScript runs the bundle's run.sh in its directory, on this system.
func (in Installer) runScript(ctx context.Context, dir, target string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "run.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CONTAINERDIR="+dir, "BUNDLE_TARGET="+target)
	cmd.Stdout, cmd.Stderr = in.out(), in.out()
	fmt.Fprintf(in.out(), "kairos-agent: bundle %s: running run.sh\n", target)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("run.sh: %w", err)
	}
	return nil
}

// unpack writes the tree into dir, a fresh private directory: nothing in
// it can be a link planted in advance, and the tree's own entries are
// made one by one (a directory is always made here, never a link's
// target), so no entry lands outside dir.
func unpack(n *fstree.Node, dir string) error {
	children, err := fstree.Sorted(n, 255)
	if err != nil {
		return err
	}
	for _, c := range children {
		p := filepath.Join(dir, c.Name)
		switch {
		case c.Mode.IsDir():
			if err := os.Mkdir(p, 0o700); err != nil {
				return err
			}
			if err := unpack(c, p); err != nil {
				return err
			}
			if err := os.Chmod(p, c.Mode.Perm()); err != nil {
				return err
			}
		case c.Mode.IsRegular():
			if err := writeNew(p, c); err != nil {
				return err
			}
		case c.Mode&fs.ModeSymlink != 0:
			if err := os.Symlink(c.Target, p); err != nil {
				return err
			}
		default:
			// Devices, fifos, sockets: nothing a bundle installs.
		}
	}
	return nil
}

func writeNew(p string, n *fstree.Node) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, n.Mode.Perm())
	if err != nil {
		return err
	}
	if n.Open != nil {
		r, err := n.Open()
		if err != nil {
			f.Close()
			return err
		}
		_, err = io.Copy(f, r)
		r.Close()
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Chmod(n.Mode.Perm()); err != nil { // not reduced by the umask
		f.Close()
		return err
	}
	return f.Close()
}

// copyInto copies the tree's directories, files and links into the root
// through safefile: a link a user planted on the way is never followed. A
// directory the root has already keeps its own mode and owner (a bundle
// built on a distro image carries /tmp, /usr...: they must not change the
// node's); files keep their setuid, setgid and sticky bits. Extended
// attributes (file capabilities) are not copied.
func (in Installer) copyInto(root *fstree.Node) error {
	var walk func(n *fstree.Node, p string) error
	walk = func(n *fstree.Node, p string) error {
		children, err := fstree.Sorted(n, 255)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for _, c := range children {
			cp := path.Join(p, c.Name)
			var err error
			switch {
			case c.Mode.IsDir():
				if _, lerr := safefile.Lstat(in.root(), cp); lerr != nil {
					err = safefile.Dir(in.root(), cp, modeBits(c.Mode), int(c.UID), int(c.GID))
				}
				if err == nil {
					err = walk(c, cp)
				}
			case c.Mode.IsRegular():
				err = copyFile(in.root(), cp, c)
			case c.Mode&fs.ModeSymlink != 0:
				err = safefile.Symlink(in.root(), cp, c.Target)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", cp, err)
			}
		}
		return nil
	}
	return walk(root, "/")
}

func copyFile(root, p string, n *fstree.Node) error {
	var r io.Reader = strings.NewReader("")
	if n.Open != nil {
		rc, err := n.Open()
		if err != nil {
			return err
		}
		defer rc.Close()
		r = rc
	}
	return safefile.WriteFrom(root, p, r, modeBits(n.Mode), int(n.UID), int(n.GID))
}

// modeBits are the permission bits of a node, setuid, setgid and sticky
// included (the type bits are the node's kind).
func modeBits(m fs.FileMode) fs.FileMode {
	return m & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

// isOCIArchive tells an OCI archive (oci-layout at its root) from `docker
// save` output (manifest.json).
func isOCIArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := tarNames(f, 64)
	return err == nil && names["oci-layout"]
}

// tarNames are the names of the first max entries of a tar stream.
func tarNames(r io.Reader, max int) (map[string]bool, error) {
	names := map[string]bool{}
	tr := tar.NewReader(r)
	for range max {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		names[strings.TrimPrefix(h.Name, "./")] = true
	}
	return names, nil
}
