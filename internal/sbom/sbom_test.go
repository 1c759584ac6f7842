package sbom

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kairos-io/kairos/tests/ocitest"
)

const dpkgStatus = `Package: systemd
Status: install ok installed
Priority: important
Section: admin
Installed-Size: 9000
Maintainer: Debian systemd Maintainers <pkg-systemd-maintainers@lists.alioth.debian.org>
Architecture: amd64
Version: 252.39-1~deb12u1
Description: system and service manager

Package: linux-image-6.1.0-50-amd64
Status: install ok installed
Priority: optional
Section: kernel
Installed-Size: 400000
Maintainer: Debian Kernel Team <debian-kernel@lists.debian.org>
Architecture: amd64
Source: linux-signed-amd64 (6.1.176+1)
Version: 6.1.176-1
Description: Linux 6.1 for 64-bit PCs (signed)

`

// archive writes an OCI archive of a Debian-like image with a dpkg
// database.
func archive(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{
		"etc/os-release":      "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"var/lib/dpkg/status": dpkgStatus,
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: diffIDs(t, img)}}); err != nil {
		t.Fatal(err)
	}
	return ocitest.Archive(t, img)
}

func diffIDs(t *testing.T, img v1.Image) []v1.Hash {
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return cf.RootFS.DiffIDs
}

// The SBOM lists the distro's packages from the image's dpkg database,
// with their versions, and the Kairos parts with theirs.
func TestWrite(t *testing.T) {
	if _, err := Syft(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "img.spdx.json")
	err := Write(context.Background(), Source{Archive: archive(t)}, out, []Package{
		{Name: "kairos-agent", Version: "v1.2.3", PURL: "pkg:github/kairos-io/kairos@v1.2.3"},
		{Name: "k3s", Version: "v1.31.2+k3s1", PURL: "pkg:github/k3s-io/k3s@v1.31.2%2Bk3s1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	names, err := Names(data)
	if err != nil {
		t.Fatal(err)
	}
	for name, version := range map[string]string{
		"systemd": "252.39-1~deb12u1", "linux-image-6.1.0-50-amd64": "6.1.176-1", "kairos-agent": "v1.2.3", "k3s": "v1.31.2+k3s1",
	} {
		if names[name] != version {
			t.Errorf("%s: %q, want %q (packages %v)", name, names[name], version, names)
		}
	}
	if !bytes.Contains(data, []byte(`"spdxVersion": "SPDX-2.3"`)) {
		t.Errorf("not SPDX 2.3:\n%.300s", data)
	}
}

func TestAddRefusesOtherDocuments(t *testing.T) {
	if _, err := add([]byte(`{"bomFormat":"CycloneDX"}`), nil); err == nil {
		t.Error("a CycloneDX document taken as SPDX")
	}
}
