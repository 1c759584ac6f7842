package node

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/internal/rootfs"
	"github.com/kairos-io/kairos/internal/signature"
)

// verified checks the upgrade image's signature by o.VerifyKey and gives
// the reference to pull: the image by the digest that was checked (for the
// node's platform, when the tag names an index).
func (n *Node) verified(ctx context.Context, ref string, o UpgradeOptions) (string, error) {
	key, err := readVerifyKey(o.VerifyKey)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(ref, "docker-image://")
	if !ok {
		return "", fmt.Errorf("%s: a signature is checked on a registry image (oci:<ref>), not on %s", o.Source, ref)
	}
	r, err := name.ParseReference(rest, rootfs.NameOptions(o.AllowInsecure)...)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", o.Source, err)
	}
	opts := rootfs.RemoteOptions(ctx, o.AllowInsecure)
	arch := n.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	desc, err := remote.Get(r, append(opts, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))...)
	if err != nil {
		return "", fmt.Errorf("source %s: %w", o.Source, err)
	}
	digest := desc.Digest
	if desc.MediaType.IsIndex() {
		// The index is what a multi-platform release signs; the image of
		// this platform is pulled by its own digest, under the index's.
		if err := signature.VerifyImage(ctx, r.Context(), digest, key, opts...); err != nil {
			return "", fmt.Errorf("%s: %w", o.Source, err)
		}
		img, err := desc.Image()
		if err != nil {
			return "", err
		}
		if digest, err = img.Digest(); err != nil {
			return "", err
		}
	} else if err := signature.VerifyImage(ctx, r.Context(), digest, key, opts...); err != nil {
		return "", fmt.Errorf("%s: %w", o.Source, err)
	}
	n.say("%s: signed by the verify key (%s)", o.Source, digest)
	return "docker-image://" + r.Context().Digest(digest.String()).String(), nil
}

// readVerifyKey reads the key: the PEM itself, or a file holding it.
func readVerifyKey(v string) (any, error) {
	data := []byte(v)
	if !strings.HasPrefix(strings.TrimSpace(v), "-----BEGIN") {
		var err error
		if data, err = os.ReadFile(v); err != nil {
			return nil, fmt.Errorf("the verify key: %w", err)
		}
	}
	k, err := signature.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("the verify key: %w", err)
	}
	return k, nil
}
