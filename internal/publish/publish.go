// Package publish is what a release reads and writes in the registry
// besides the images the builders push: whether an entry is there already
// with the same inputs, and the image index that puts the arches of one
// image under one tag.
package publish

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kairos-io/kairos/internal/rootfs"
)

// InputsAnnotation carries, on a release image's index and manifest, the
// digest of everything its build depended on: a release run again skips
// an entry whose image is there with the same value.
const InputsAnnotation = "io.kairos.release.inputs"

// Pushed is the digest ref has in its registry and its InputsAnnotation
// ("" when it has none); ok is false when ref is not there.
func Pushed(ctx context.Context, ref string, insecure bool) (digest v1.Hash, inputs string, ok bool) {
	r, err := name.ParseReference(ref, rootfs.NameOptions(insecure)...)
	if err != nil {
		return v1.Hash{}, "", false
	}
	desc, err := remote.Get(r, rootfs.RemoteOptions(ctx, insecure)...)
	if err != nil {
		return v1.Hash{}, "", false
	}
	var annotations map[string]string
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return desc.Digest, "", true
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return desc.Digest, "", true
		}
		annotations = m.Annotations
	} else {
		img, err := desc.Image()
		if err != nil {
			return desc.Digest, "", true
		}
		m, err := img.Manifest()
		if err != nil {
			return desc.Digest, "", true
		}
		annotations = m.Annotations
	}
	return desc.Digest, annotations[InputsAnnotation], true
}

// Index pushes to ref one image index holding every manifest of members
// (pinned references, each an image or an index: a builder's push with
// its attestations), so a node of any of their platforms pulls its own
// from one tag. Manifests of a platform already added are refused: two
// members of one platform are a mistake in the matrix.
func Index(ctx context.Context, ref string, members []string, insecure bool) (v1.Hash, error) {
	r, err := name.ParseReference(ref, rootfs.NameOptions(insecure)...)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: %w", ref, err)
	}
	opts := rootfs.RemoteOptions(ctx, insecure)
	var idx v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	seen := map[string]string{}
	for _, m := range members {
		mr, err := name.ParseReference(m, rootfs.NameOptions(insecure)...)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", m, err)
		}
		desc, err := remote.Get(mr, opts...)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", m, err)
		}
		if !desc.MediaType.IsIndex() {
			img, err := desc.Image()
			if err != nil {
				return v1.Hash{}, err
			}
			cf, err := img.ConfigFile()
			if err != nil {
				return v1.Hash{}, fmt.Errorf("%s: %w", m, err)
			}
			d := desc.Descriptor
			d.Platform = cf.Platform()
			if err := once(seen, d, m); err != nil {
				return v1.Hash{}, err
			}
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: d})
			continue
		}
		child, err := desc.ImageIndex()
		if err != nil {
			return v1.Hash{}, err
		}
		im, err := child.IndexManifest()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("%s: %w", m, err)
		}
		for _, d := range im.Manifests {
			if d.Platform != nil && d.Platform.OS != "unknown" {
				if err := once(seen, d, m); err != nil {
					return v1.Hash{}, err
				}
			}
			img, err := child.Image(d.Digest)
			if err != nil {
				return v1.Hash{}, fmt.Errorf("%s: %s: %w", m, d.Digest, err)
			}
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: d})
		}
	}
	if err := remote.WriteIndex(r, idx, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	return idx.Digest()
}

func once(seen map[string]string, d v1.Descriptor, member string) error {
	if d.Platform == nil {
		return fmt.Errorf("%s: a manifest without a platform", member)
	}
	p := d.Platform.String()
	if prev, ok := seen[p]; ok {
		return fmt.Errorf("%s and %s are both %s", prev, member, p)
	}
	seen[p] = member
	return nil
}
