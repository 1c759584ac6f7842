// Package baseimage finds the distro base image of a build: from its registry
// when one answers, otherwise bootstrapped from the distro's own package
// mirror into an OCI layout that BuildKit reads directly.
package baseimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/binfmt"
)

// Base is where the base image comes from: a registry reference, or an OCI
// layout directory with the manifest digest to use.
type Base struct {
	Ref    string
	Layout string
	Digest v1.Hash
}

// Resolver decides between registry and bootstrap.
type Resolver struct {
	// CacheDir holds bootstrapped bases, one directory per recipe hash.
	CacheDir string
	// ProbeTimeout bounds the registry check.
	ProbeTimeout time.Duration
	// Arch is the target architecture (amd64, arm64).
	Arch string
}

// Resolve returns the base for a flavor. ref, when not empty, overrides the
// flavor's base image and must be reachable: no bootstrap is attempted for
// an image the user named.
func (r Resolver) Resolve(ctx context.Context, f *flavors.Flavor, ref string) (Base, error) {
	if ref != "" {
		logrus.Infof("base: using %s from its registry (BASE_IMAGE)", ref)
		return Base{Ref: ref}, nil
	}
	err := r.probe(ctx, f.BaseImage)
	if err == nil {
		logrus.Infof("base: registry reachable, pulling %s", f.BaseImage)
		return Base{Ref: f.BaseImage}, nil
	}
	if f.Bootstrap == nil {
		return Base{}, fmt.Errorf("base image %s is not reachable (%v) and flavor %s has no offline bootstrap: build where that registry is reachable, or give the base: a reachable BASE_IMAGE (--BASE_IMAGE=<ref>, kairos build --base-image <ref>), or the base named context (buildx --build-context base=oci-layout://<dir>, buildctl --opt context:base=...)", f.BaseImage, err, f.ID())
	}
	logrus.Infof("base: registry unreachable for %s (%v); bootstrapping from %s with %s", f.BaseImage, shortErr(err), f.Bootstrap.Mirror, f.Bootstrap.Tool)
	return r.bootstrap(ctx, f)
}

func (r Resolver) probe(ctx context.Context, ref string) error {
	named, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("bad base image reference %q: %w", ref, err)
	}
	timeout := r.ProbeTimeout
	if timeout == 0 {
		timeout = 8 * time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = remote.Head(named, remote.WithContext(pctx))
	return err
}

// recipe is what a bootstrapped base depends on; its hash names the cache entry.
type recipe struct {
	Format    int               `json:"format"`
	Flavor    string            `json:"flavor"`
	Arch      string            `json:"arch"`
	Bootstrap flavors.Bootstrap `json:"bootstrap"`
}

// recipeFormat changes whenever the way a base is made changes.
const recipeFormat = 2

func (r Resolver) key(f *flavors.Flavor) (string, error) {
	data, err := json.Marshal(recipe{Format: recipeFormat, Flavor: f.ID(), Arch: r.Arch, Bootstrap: *f.Bootstrap})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return fmt.Sprintf("%s-%s-%s", f.ID(), r.Arch, hex.EncodeToString(sum[:])[:16]), nil
}

func (r Resolver) bootstrap(ctx context.Context, f *flavors.Flavor) (Base, error) {
	key, err := r.key(f)
	if err != nil {
		return Base{}, err
	}
	dir := filepath.Join(r.CacheDir, key)
	if b, err := readCached(dir); err == nil {
		logrus.Infof("base: using cached bootstrap %s", dir)
		return b, nil
	}
	if err := os.MkdirAll(r.CacheDir, 0o755); err != nil {
		return Base{}, fmt.Errorf("creating base cache: %w", err)
	}
	tmp, err := os.MkdirTemp(r.CacheDir, ".tmp-"+key+"-")
	if err != nil {
		return Base{}, fmt.Errorf("creating base cache entry: %w", err)
	}
	defer os.RemoveAll(tmp)

	tarPath := filepath.Join(tmp, "rootfs.tar")
	start := time.Now()
	if err := runBootstrap(ctx, f.Bootstrap, r.Arch, tarPath); err != nil {
		return Base{}, err
	}
	logrus.Infof("base: bootstrapped %s in %s", f.ID(), time.Since(start).Round(time.Second))

	b, err := writeLayout(filepath.Join(tmp, "oci"), tarPath, r.Arch, f.BaseImage)
	if err != nil {
		return Base{}, err
	}
	if err := os.Remove(tarPath); err != nil {
		return Base{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "digest"), []byte(b.Digest.String()), 0o644); err != nil {
		return Base{}, err
	}
	// Publish the entry atomically so an interrupted bootstrap is never reused.
	if err := os.Rename(tmp, dir); err != nil {
		return Base{}, fmt.Errorf("publishing base cache entry: %w", err)
	}
	b.Layout = filepath.Join(dir, "oci")
	logrus.Infof("base: cached as %s (%s)", dir, b.Digest)
	return b, nil
}

func readCached(dir string) (Base, error) {
	data, err := os.ReadFile(filepath.Join(dir, "digest"))
	if err != nil {
		return Base{}, err
	}
	h, err := v1.NewHash(strings.TrimSpace(string(data)))
	if err != nil {
		return Base{}, err
	}
	return Base{Layout: filepath.Join(dir, "oci"), Digest: h}, nil
}

func runBootstrap(ctx context.Context, b *flavors.Bootstrap, arch, out string) error {
	switch b.Tool {
	case "mmdebstrap":
		// A foreign architecture's maintainer scripts run under QEMU.
		if arch != runtime.GOARCH {
			res, err := binfmt.Ensure(arch)
			if err != nil {
				return fmt.Errorf("bootstrapping an %s base on %s: %w", arch, runtime.GOARCH, err)
			}
			logrus.Infof("base: %s binaries run under emulation (%s)", arch, res)
		}
		args := []string{"--variant=" + b.Variant, "--mode=root", "--architectures=" + arch, "--format=tar"}
		if len(b.Include) > 0 {
			args = append(args, "--include="+strings.Join(b.Include, ","))
		}
		args = append(args, b.Suite, out, b.Mirror)
		cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		// A fixed epoch keeps file times, and so the layer, stable across runs.
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
		if err := cmd.Run(); err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				return errors.New("mmdebstrap is not installed: run ./earthly.sh, which installs it, or apt-get install mmdebstrap")
			}
			return fmt.Errorf("mmdebstrap %s: %w", strings.Join(args, " "), err)
		}
		return nil
	default:
		return fmt.Errorf("bootstrap tool %q is not supported", b.Tool)
	}
}

// writeLayout turns a rootfs tar into a one-layer image in an OCI layout.
func writeLayout(dir, tarPath, arch, refName string) (Base, error) {
	// OCI media types throughout: the result is an OCI layout that skopeo,
	// umoci and BuildKit's oci-layout source all read.
	layer, err := tarball.LayerFromFile(tarPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return Base{}, fmt.Errorf("reading %s: %w", tarPath, err)
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return Base{}, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return Base{}, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", arch
	if arch == "arm64" {
		cfg.Variant = "v8" // the normalized platform, as registries' arm64 images say
	}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cfg.Config.Cmd = []string{"/bin/sh"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return Base{}, err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return Base{}, fmt.Errorf("writing OCI layout: %w", err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		// The layout convention: the tag alone names the image.
		"org.opencontainers.image.ref.name": tagOf(refName),
	})); err != nil {
		return Base{}, fmt.Errorf("writing OCI layout: %w", err)
	}
	h, err := img.Digest()
	if err != nil {
		return Base{}, err
	}
	return Base{Layout: dir, Digest: h}, nil
}

// Index gathers bootstrapped bases of several architectures into one OCI
// layout whose index lists each under its platform, for a multi-platform
// build: BuildKit picks each platform's manifest from it. The layout is
// cached under cacheDir, named by the digests it holds. Registry bases
// need none of this: a registry tag is already an index.
func Index(cacheDir string, bases []Base) (Base, error) {
	if len(bases) == 1 {
		return bases[0], nil
	}
	var digests []string
	for _, b := range bases {
		if b.Layout == "" {
			return Base{}, fmt.Errorf("base %s is a registry image; a multi-platform build takes it as it is", b.Ref)
		}
		digests = append(digests, b.Digest.String())
	}
	sort.Strings(digests)
	sum := sha256.Sum256([]byte(strings.Join(digests, "\n")))
	dir := filepath.Join(cacheDir, "index-"+hex.EncodeToString(sum[:])[:16])
	if b, err := readCached(dir); err == nil {
		return b, nil
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, b := range bases {
		p, err := layout.FromPath(b.Layout)
		if err != nil {
			return Base{}, fmt.Errorf("reading base layout %s: %w", b.Layout, err)
		}
		img, err := p.Image(b.Digest)
		if err != nil {
			return Base{}, fmt.Errorf("base %s in %s: %w", b.Digest, b.Layout, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return Base{}, err
		}
		pl := cfg.Platform()
		if pl == nil {
			return Base{}, fmt.Errorf("base %s names no platform", b.Digest)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: pl}})
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Base{}, err
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-index-")
	if err != nil {
		return Base{}, err
	}
	defer os.RemoveAll(tmp)
	lp, err := layout.Write(filepath.Join(tmp, "oci"), empty.Index)
	if err != nil {
		return Base{}, fmt.Errorf("writing OCI layout: %w", err)
	}
	if err := lp.AppendIndex(idx); err != nil {
		return Base{}, fmt.Errorf("writing OCI layout: %w", err)
	}
	h, err := idx.Digest()
	if err != nil {
		return Base{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "digest"), []byte(h.String()), 0o644); err != nil {
		return Base{}, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Base{}, fmt.Errorf("publishing base index: %w", err)
	}
	return Base{Layout: filepath.Join(dir, "oci"), Digest: h}, nil
}

func tagOf(ref string) string {
	if r, err := name.NewTag(ref); err == nil {
		return r.TagStr()
	}
	return "latest"
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
