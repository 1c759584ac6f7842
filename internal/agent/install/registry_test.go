package install

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kairos-io/kairos/tests/registry"
)

// dirLayer is a layer holding the files of dir.
func dirLayer(t *testing.T, dir string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = strings.TrimPrefix(p, dir+"/")
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	return buf.Bytes()
}

// TestInstallFromRegistry installs install.source oci:<ref>, pulled with
// go-containerregistry from a real registry over plain HTTP.
func TestInstallFromRegistry(t *testing.T) {
	need(t, "losetup", "mkfs.ext4", "tune2fs", "debugfs")
	tree := imageTree(t)
	os.WriteFile(filepath.Join(tree, "etc/from-registry"), []byte("pulled\n"), 0o644)
	data := dirLayer(t, tree)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.Start(t, "127.0.0.1:5055")
	ref, err := name.ParseReference(reg.Addr+"/kairos/test:v9.9.9", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}

	dev := loopDisk(t, 3<<30)
	in := &Installer{Host: System, WorkDir: t.TempDir(), LiveRoot: filepath.Join(t.TempDir(), "none"), Tmp: t.TempDir()}
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
	if got := sh(t, "debugfs", "-R", "cat /etc/from-registry", filepath.Join(state, "cOS/active.img")); !strings.Contains(got, "pulled") {
		t.Errorf("active.img is not the registry image: %q", got)
	}
}
