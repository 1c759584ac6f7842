package rootfs

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/tests/registry"
)

// TestPlainHTTPNeedsInsecure pulls from a plain-HTTP registry under names
// go-containerregistry would fall back to plain HTTP for (an RFC 1918
// address, a *.local host): without Options.Insecure the pull fails with a
// message naming the flag and not one request leaves over plain HTTP; with
// it the pull succeeds. A loopback registry needs no flag (as in Docker).
func TestPlainHTTPNeedsInsecure(t *testing.T) {
	addr := registry.InProcess(t)
	ref, err := name.ParseReference(addr + "/kairos/test:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, testImage(t)); err != nil {
		t.Fatal(err)
	}
	plain := registry.RouteAll(t, addr)
	_, port, _ := strings.Cut(addr, ":")

	for _, host := range []string{"10.20.30.40:" + port, "registry.local:" + port} {
		t.Run(strings.Split(host, ":")[0], func(t *testing.T) {
			src := "docker-image://" + host + "/kairos/test:v1"
			plain.Store(0)
			tree, err := OpenWith(context.Background(), src, Options{Tmp: t.TempDir()})
			if err == nil {
				tree.Close()
				t.Fatalf("pulling %s without Insecure succeeded, with %d plain-HTTP requests", src, plain.Load())
			}
			t.Log(err)
			if !strings.Contains(err.Error(), "--allow-insecure-registries") || !strings.Contains(err.Error(), host) {
				t.Errorf("error %q does not name %s and --allow-insecure-registries", err, host)
			}
			if n := plain.Load(); n != 0 {
				t.Errorf("%d requests went over plain HTTP without Insecure", n)
			}

			tree, err = OpenWith(context.Background(), src, Options{Tmp: t.TempDir(), Insecure: true})
			if err != nil {
				t.Fatalf("pulling %s with Insecure: %v", src, err)
			}
			defer tree.Close()
			checkTree(t, tree)
			if plain.Load() == 0 {
				t.Error("the insecure pull made no plain-HTTP request: the test does not exercise what it means to")
			}
		})
	}

	t.Run("loopback", func(t *testing.T) {
		tree, err := OpenWith(context.Background(), "docker-image://127.0.0.1:"+port+"/kairos/test:v1", Options{Tmp: t.TempDir()})
		if err != nil {
			t.Fatalf("a loopback registry over plain HTTP needs no flag: %v", err)
		}
		defer tree.Close()
		checkTree(t, tree)
	})
}
