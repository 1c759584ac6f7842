// Package publish puts a release's images where nodes pull them from: the
// OCI archive a build wrote, pushed to a registry under its tag.
package publish

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/internal/rootfs"
)

// Push writes the image of archive (an OCI archive, as `kairos build
// --target image` writes it) to ref and gives its manifest digest.
// Plain HTTP is refused unless insecure, except to loopback registries.
func Push(ctx context.Context, archive, ref string, platform v1.Platform, insecure bool, tmp string) (v1.Hash, error) {
	r, err := name.ParseReference(ref, rootfs.NameOptions(insecure)...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", ref, err)
	}
	img, done, err := rootfs.ArchiveImage(archive, "", tmp, &platform)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", archive, err)
	}
	defer done()
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, rootfs.RemoteOptions(ctx, insecure)...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return digest, nil
}

// Pushed is the digest ref has in its registry, if it has one: a release
// run again skips an entry whose image is there with the same inputs.
func Pushed(ctx context.Context, ref string, insecure bool) (v1.Hash, bool) {
	r, err := name.ParseReference(ref, rootfs.NameOptions(insecure)...)
	if err != nil {
		return v1.Hash{}, false
	}
	d, err := remote.Head(r, rootfs.RemoteOptions(ctx, insecure)...)
	if err != nil {
		return v1.Hash{}, false
	}
	return d.Digest, true
}
