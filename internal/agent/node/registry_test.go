package node

import (
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
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/tests/cosigntool"
	"github.com/kairos-io/kairos/tests/registry"
)

// pushTree pushes a tree of version with a big incompressible file, so
// that its layer is big enough to cut mid-way.
func pushTree(t *testing.T, version, ref string) {
	t.Helper()
	dir := tree(t, version)
	bulk := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{1}).Read(bulk)
	os.MkdirAll(filepath.Join(dir, "usr/share"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "usr/share/bulk"), bulk, 0o644); err != nil {
		t.Fatal(err)
	}
	registry.PushDir(t, dir, ref)
}

// TestUpgradeFromRegistry pulls oci:<ref> from a real registry; then the
// same through a proxy that drops the connection in the middle of the
// layer: a clean error, and nothing rotated.
func TestUpgradeFromRegistry(t *testing.T) {
	dev, n := installed(t)
	reg := registry.Start(t, "127.0.0.1:5056")
	pushTree(t, "v2", reg.Addr+"/kairos/node:v2")
	ctx := context.Background()
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "oci:" + reg.Addr + "/kairos/node:v2", AllowInsecure: true}); err != nil {
		t.Fatal(err)
	}
	if got := version(t, dev+"p4", "active.img"); got != "v2 COS_ACTIVE" {
		t.Errorf("active.img %s", got)
	}

	// A registry that goes away mid-pull.
	pushTree(t, "v3", reg.Addr+"/kairos/node:v3")
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

// With a verify key, an image without a valid signature by it is refused
// before anything is written, with the reason; the signed one upgrades.
func TestUpgradeVerifyKey(t *testing.T) {
	dev, n := installed(t)
	reg := registry.Start(t, "127.0.0.1:5057")
	keys := cosigntool.KeyPair(t)
	signed, unsigned := reg.Addr+"/kairos/node:v2", reg.Addr+"/kairos/node:v3"
	pushTree(t, "v2", signed)
	pushTree(t, "v3", unsigned)
	r, err := name.ParseReference(signed)
	if err != nil {
		t.Fatal(err)
	}
	d, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	cosigntool.Sign(t, keys, r.Context().String()+"@"+d.Digest.String())
	ctx := context.Background()

	err = n.Upgrade(ctx, UpgradeOptions{Source: "oci:" + unsigned, AllowInsecure: true, VerifyKey: cosigntool.Pub(keys)})
	if err == nil || !strings.Contains(err.Error(), "no valid signature by the key") || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("the unsigned image: %v", err)
	}
	t.Logf("refused: %v", err)
	if got := version(t, dev+"p4", "active.img"); got != "v1 COS_ACTIVE" {
		t.Errorf("active.img after the refusal: %s", got)
	}
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "file:/nonexistent.tar", VerifyKey: cosigntool.Pub(keys)}); err == nil || !strings.Contains(err.Error(), "a signature is checked on a registry image") {
		t.Errorf("a local source with a verify key: %v", err)
	}
	// The key inline, as upgrade.verify_key may hold it.
	pem, err := os.ReadFile(cosigntool.Pub(keys))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "oci:" + signed, AllowInsecure: true, VerifyKey: string(pem)}); err != nil {
		t.Fatalf("the signed image: %v", err)
	}
	if got := version(t, dev+"p4", "active.img"); got != "v2 COS_ACTIVE" {
		t.Errorf("active.img %s", got)
	}
}
