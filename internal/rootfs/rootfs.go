// Package rootfs opens what `kairos artifacts` reads a root file system
// from, and flattens it into the tree the artifact writers take
// (fstree.Node):
//
//	dir:<rootfs>                 a directory on disk
//	oci:<layout dir>[:<tag>]     an OCI image layout
//	oci-archive:<tar>[:<tag>]    an OCI layout in a tar (as `kairos build` writes)
//	docker-image://<ref>         an image in a registry (go-containerregistry)
//
// Image layers are applied in order with the OCI whiteout rules; file
// contents are spooled once into a temporary file so that writers can read
// them in any order, as often as they need. Every blob of an image is
// checked against its digest on the way (verify.go), and registries are
// reached over HTTPS only unless Options.Insecure (registry.go).
package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kairos-io/kairos/internal/fstree"
)

// Tree is an opened source: its root, and what must be released after the
// writers are done with it.
type Tree struct {
	Root *fstree.Node
	// Digest is the image manifest's (for an index, the chosen
	// platform's); empty for a directory.
	Digest v1.Hash
	close  func() error
}

// Close releases the spool file and temporary directories.
func (t *Tree) Close() error {
	if t == nil || t.close == nil {
		return nil
	}
	return t.close()
}

// Kinds lists the accepted source prefixes, for error messages and --help.
var Kinds = []string{"dir:<rootfs>", "oci:<layout>[:<tag>]", "oci-archive:<tar>[:<tag>]", "docker-archive:<tar>", "docker-image://<ref>"}

// Open resolves a source reference. tmp is where the spool file goes ("" =
// the system default); platform picks the image of a multi-platform index
// (nil = this machine's).
func Open(ctx context.Context, ref, tmp string, platform *v1.Platform) (*Tree, error) {
	return OpenWith(ctx, ref, Options{Tmp: tmp, Platform: platform})
}

// Options of OpenWith.
type Options struct {
	Tmp      string
	Platform *v1.Platform
	// Insecure allows registries over plain HTTP (docker-image:// only);
	// without it plain HTTP is refused, except to loopback (RemoteOptions).
	Insecure bool
}

// OpenWith is Open with every option.
func OpenWith(ctx context.Context, ref string, o Options) (*Tree, error) {
	tmp, platform := o.Tmp, o.Platform
	if platform == nil {
		platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	kind, rest, _ := strings.Cut(ref, ":")
	switch {
	case kind == "dir":
		return openDir(rest)
	case kind == "oci":
		dir, tag := splitTag(rest)
		img, desc, err := layoutImage(dir, tag, platform)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", ref, err)
		}
		return flattenVerified(ref, img, desc, tmp)
	case kind == "oci-archive":
		file, tag := splitTag(rest)
		img, desc, dir, err := archiveImage(file, tag, tmp, platform)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", ref, err)
		}
		t, err := flattenVerified(ref, img, desc, tmp)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		inner := t.close
		t.close = func() error { return errors.Join(inner(), os.RemoveAll(dir)) }
		return t, nil
	case kind == "docker-archive":
		// `docker save` output: one image (the first of the archive).
		img, err := tarball.ImageFromPath(rest, nil)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", ref, err)
		}
		desc, err := ownDescriptor(img)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", ref, err)
		}
		return flattenVerified(ref, img, desc, tmp)
	case strings.HasPrefix(ref, "docker-image://"):
		r, err := name.ParseReference(strings.TrimPrefix(ref, "docker-image://"), NameOptions(o.Insecure)...)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", ref, err)
		}
		img, err := remote.Image(r, append(RemoteOptions(ctx, o.Insecure), remote.WithPlatform(*platform))...)
		if err != nil {
			return nil, fmt.Errorf("source %s: pulling: %w", ref, err)
		}
		// go-containerregistry checked the manifest against the digest
		// it was asked for (the reference's, or the index's for a
		// platform's image); by tag, the registry's answer is the root
		// of trust, as index.json is for a layout. So the manifest's own
		// digest is what the rest is checked against.
		desc, err := ownDescriptor(img)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", ref, err)
		}
		return flattenVerified(ref, img, desc, tmp)
	default:
		return nil, fmt.Errorf("source %q: unknown kind (valid: %s)", ref, strings.Join(Kinds, ", "))
	}
}

// AgentKinds are the sources the node agent takes (install --source,
// upgrade --source), as upstream Kairos spells them.
var AgentKinds = []string{"oci:<registry ref>", "dir:<path>", "file:<oci tar>"}

// FromAgent maps an agent source to the reference Open takes: oci:<ref>
// is an image in a registry, dir:<path> a root file system, file:<tar> an
// OCI archive.
func FromAgent(s string) (string, error) {
	kind, rest, _ := strings.Cut(s, ":")
	if rest != "" {
		switch kind {
		case "oci", "docker":
			return "docker-image://" + rest, nil
		case "dir":
			return s, nil
		case "file":
			return "oci-archive:" + rest, nil
		}
	}
	return "", fmt.Errorf("source %q: want one of %s", s, strings.Join(AgentKinds, ", "))
}

// splitTag cuts an optional ":<tag>" off a path; a colon inside the last
// path element followed by no slash is the tag.
func splitTag(s string) (string, string) {
	i := strings.LastIndex(s, ":")
	if i < 0 || strings.Contains(s[i+1:], "/") {
		return s, ""
	}
	return s[:i], s[i+1:]
}

func archiveImage(file, tag, tmp string, platform *v1.Platform) (v1.Image, v1.Descriptor, string, error) {
	dir, err := os.MkdirTemp(tmp, "kairos-oci-archive-")
	if err != nil {
		return nil, v1.Descriptor{}, "", err
	}
	if err := untar(file, dir); err != nil {
		os.RemoveAll(dir)
		return nil, v1.Descriptor{}, "", err
	}
	img, desc, err := layoutImage(dir, tag, platform)
	if err != nil {
		os.RemoveAll(dir)
		return nil, v1.Descriptor{}, "", err
	}
	return img, desc, dir, nil
}

// layoutImage finds the image in an OCI layout: the one whose ref.name
// annotation is tag (or ends in ":"+tag), else the only one, resolving an
// index to the platform's image. It returns the descriptor that selected
// the image, which its manifest is checked against; a nested index is
// checked against its own descriptor here, index.json being the root of
// trust of the layout.
func layoutImage(dir, tag string, platform *v1.Platform) (v1.Image, v1.Descriptor, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, v1.Descriptor{}, fmt.Errorf("%s is not an OCI layout: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	man, err := idx.IndexManifest()
	if err != nil {
		return nil, v1.Descriptor{}, err
	}
	var picked []v1.Descriptor
	var names []string
	for _, d := range man.Manifests {
		n := d.Annotations["org.opencontainers.image.ref.name"]
		names = append(names, n)
		if tag == "" || n == tag || strings.HasSuffix(n, ":"+tag) {
			picked = append(picked, d)
		}
	}
	switch {
	case len(picked) == 0:
		return nil, v1.Descriptor{}, fmt.Errorf("no image tagged %q in %s (tags: %s)", tag, dir, strings.Join(names, ", "))
	case len(picked) > 1:
		return nil, v1.Descriptor{}, fmt.Errorf("%s holds %d images: name one with :<tag> (tags: %s)", dir, len(picked), strings.Join(names, ", "))
	}
	d := picked[0]
	if d.MediaType.IsIndex() {
		child, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, v1.Descriptor{}, err
		}
		raw, err := child.RawManifest()
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("reading the image index %s: %w", d.Digest, err)
		}
		if err := checkBlob("the image index", "index.json", raw, d); err != nil {
			return nil, v1.Descriptor{}, err
		}
		// Parsed from the checked bytes, not read again.
		cm, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, v1.Descriptor{}, fmt.Errorf("parsing the image index %s: %w", d.Digest, err)
		}
		for _, m := range cm.Manifests {
			if m.Platform != nil && m.Platform.Satisfies(*platform) {
				img, err := child.Image(m.Digest)
				return img, m, err
			}
		}
		return nil, v1.Descriptor{}, fmt.Errorf("the image in %s has no %s/%s variant", dir, platform.OS, platform.Architecture)
	}
	img, err := idx.Image(d.Digest)
	return img, d, err
}

// ownDescriptor describes img by its own manifest.
func ownDescriptor(img v1.Image) (v1.Descriptor, error) {
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	n, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{Digest: d, Size: n}, nil
}

// flattenVerified flattens img (selected by desc) checking every blob on
// the way: see verified. It is the one path of every image source.
func flattenVerified(ref string, img v1.Image, desc v1.Descriptor, tmp string) (*Tree, error) {
	v, err := verified(img, desc)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", ref, err)
	}
	t, err := Flatten(v, tmp)
	if ferr := v.failure(); ferr != nil {
		if t != nil {
			t.Close()
		}
		return nil, fmt.Errorf("source %s: %w", ref, ferr)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", ref, err)
	}
	if err := v.unchecked(); err != nil {
		t.Close()
		return nil, fmt.Errorf("source %s: %w", ref, err)
	}
	t.Digest = desc.Digest
	return t, nil
}

// untar extracts a plain tar (an OCI archive: regular files and dirs only).
func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", file, err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+hdr.Name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.Create(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: unexpected entry %s (type %c) in an OCI archive", file, hdr.Name, hdr.Typeflag)
		}
	}
}
