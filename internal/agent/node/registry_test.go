package node

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
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

// pushTree pushes dir as a one-layer image to ref.
func pushTree(t *testing.T, dir, ref string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		hdr, _ := tar.FileInfoHeader(fi, "")
		hdr.Name = strings.TrimPrefix(p, dir+"/")
		tw.WriteHeader(hdr)
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			tw.Write(data)
		}
		return nil
	})
	// Incompressible bulk, so that the blob is big enough to cut mid-way.
	bulk := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{1}).Read(bulk)
	tw.WriteHeader(&tar.Header{Name: "usr/share/bulk", Mode: 0o644, Size: int64(len(bulk)), Typeflag: tar.TypeReg})
	tw.Write(bulk)
	tw.Close()
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeFromRegistry pulls oci:<ref> from a real registry; then the
// same through a proxy that drops the connection in the middle of the
// layer: a clean error, and nothing rotated.
func TestUpgradeFromRegistry(t *testing.T) {
	dev, n := installed(t)
	reg := registry.Start(t, "127.0.0.1:5056")
	pushTree(t, tree(t, "v2"), reg.Addr+"/kairos/node:v2")
	ctx := context.Background()
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "oci:" + reg.Addr + "/kairos/node:v2", AllowInsecure: true}); err != nil {
		t.Fatal(err)
	}
	if got := version(t, dev+"p4", "active.img"); got != "v2 COS_ACTIVE" {
		t.Errorf("active.img %s", got)
	}

	// A registry that goes away mid-pull.
	pushTree(t, tree(t, "v3"), reg.Addr+"/kairos/node:v3")
	target, _ := url.Parse("http://" + reg.Addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") && r.Method == http.MethodGet {
			// Half a blob, then the connection dies.
			rec := &cut{ResponseWriter: w, left: 1 << 20}
			proxy.ServeHTTP(rec, r)
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	defer srv.Close()
	err = n.Upgrade(ctx, UpgradeOptions{Source: "oci:" + l.Addr().String() + "/kairos/node:v3", AllowInsecure: true})
	if err == nil {
		t.Fatal("an upgrade from a registry that went away succeeded")
	}
	t.Logf("error: %v", err)
	if got := version(t, dev+"p4", "active.img"); got != "v2 COS_ACTIVE" {
		t.Errorf("active.img after the failed pull: %s", got)
	}
	if got := version(t, dev+"p4", "passive.img"); got != "v1 COS_PASSIVE" {
		t.Errorf("passive.img after the failed pull: %s", got)
	}
	if got := version(t, dev+"p4", "transition.img"); got != "missing" {
		t.Errorf("transition.img after the failed pull: %s", got)
	}
}

// cut passes at most left bytes of a response body.
type cut struct {
	http.ResponseWriter
	left int
}

func (c *cut) Write(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, io.ErrClosedPipe
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	c.left -= len(p)
	return c.ResponseWriter.Write(p)
}
