// Package frontendimage assembles the gateway image of the Kairos frontend:
// a scratch image holding /kairos-frontend (the entrypoint BuildKit runs for
// gateway.v0 and "# syntax=") and /agents/<os>_<arch>/kairos-agent, the
// agents the frontend puts into images of each platform when the caller
// passes no agent context. It is written with
// go-containerregistry, without a daemon, and is reproducible: one layer
// with sorted entries and fixed times.
package frontendimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/kairos-io/kairos/frontend"
	"github.com/kairos-io/kairos/internal/localbuild"
)

// FrontendPath is the entrypoint inside the image, and the artifact writer
// the frontend runs from the same image.
const FrontendPath = "/" + frontend.ToolsFile

// Spec is what goes into the image.
type Spec struct {
	Frontend string // static kairos-frontend binary for Arch
	// Agents maps "<os>_<arch>" (linux_amd64) to a static kairos-agent;
	// the mesh's program beside it (localbuild.MeshFor) goes with it.
	Agents  map[string]string
	Version string // recorded in labels
	Arch    string // GOARCH of the frontend binary
	Epoch   time.Time
}

// Build returns the image.
func Build(s Spec) (v1.Image, error) {
	files := map[string]string{FrontendPath: s.Frontend}
	for plat, bin := range s.Agents {
		dir := "/" + frontend.AgentsDir + "/" + plat + "/"
		files[dir+frontend.AgentFile] = bin
		files[dir+frontend.MeshFile] = localbuild.MeshFor(bin)
	}
	layerTar, err := tarFiles(files, s.Epoch)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("making the image layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", s.Arch
	cfg.Created = v1.Time{Time: s.Epoch}
	cfg.Config.Entrypoint = []string{FrontendPath}
	cfg.Config.Labels = map[string]string{
		// BuildKit reads this to know the frontend speaks the gateway API
		// with inputs (named contexts).
		"moby.buildkit.frontend.network.none": "true",
		"moby.buildkit.frontend.caps":         "moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts",
		"org.opencontainers.image.title":      "kairos-frontend",
		"org.opencontainers.image.version":    s.Version,
		"org.opencontainers.image.source":     "https://github.com/kairos-io/kairos",
	}
	return mutate.ConfigFile(img, cfg)
}

// tarFiles makes a layer tar of the given files (image path -> host path),
// sorted, owned by root, all stamped with epoch.
func tarFiles(files map[string]string, epoch time.Time) ([]byte, error) {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, p := range paths {
		// Parent directories first, once each, as tar readers expect.
		var parents []string
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: d[1:] + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		data, err := os.ReadFile(files[p])
		if err != nil {
			return nil, fmt.Errorf("reading %s for %s: %w", files[p], p, err)
		}
		hdr := &tar.Header{
			Name: p[1:], Mode: 0o755, Size: int64(len(data)), ModTime: epoch,
			Typeflag: tar.TypeReg, Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteArchive writes img as an OCI archive (an OCI layout in a tar) whose
// index names it ref, through a temporary file renamed into place.
func WriteArchive(img v1.Image, ref, dest string) error {
	dir, err := os.MkdirTemp(filepath.Dir(dest), ".frontend-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("writing OCI layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": ref,
	})); err != nil {
		return fmt.Errorf("writing OCI layout: %w", err)
	}
	partial := dest + ".partial"
	if err := tarDir(dir, partial); err != nil {
		os.Remove(partial)
		return err
	}
	return os.Rename(partial, dest)
}

func tarDir(dir, dest string) error {
	var paths []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(paths)
	f, err := os.Create(dest)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: time.Unix(0, 0), Mode: 0o644, Format: tar.FormatPAX}
		if info.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		_, err = io.Copy(tw, src)
		src.Close()
		if err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// Push uploads img to ref. Registries on loopback addresses are reached over
// plain HTTP (as Docker does); insecure allows it for any registry.
func Push(img v1.Image, ref string, insecure bool) (v1.Hash, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("bad image reference %q: %w", ref, err)
	}
	if err := remote.Write(r, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return img.Digest()
}
