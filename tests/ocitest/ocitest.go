// Package ocitest writes images as the build does, for tests of what
// reads them: an OCI archive (a tar of an OCI layout, the form `kairos
// build --target image` and BuildKit's oci exporter write).
package ocitest

import (
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// Archive writes img as an OCI archive in a test directory and gives its
// path. The tar holds the layout's entries by name, without a "./" entry,
// as BuildKit's do (syft refuses one).
func Archive(t testing.TB, img v1.Image) string {
	t.Helper()
	lay := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "img.oci.tar")
	if o, err := exec.Command("tar", "-C", lay, "-cf", out, "oci-layout", "index.json", "blobs").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, o)
	}
	return out
}
