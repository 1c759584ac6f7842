package rootfs

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// An image is only as trustworthy as the chain of digests from what named
// it (a layout's index.json, a registry tag or digest) down to the bytes of
// every file. go-containerregistry checks that chain for blobs it pulls
// from a registry, but not for an OCI layout on disk (oci:, oci-archive:,
// the agent's file:), where a blob swapped under its name is used as is,
// and nowhere does it check layers' uncompressed contents against the
// config's rootfs.diff_ids. verified checks every link for any image, so
// that all sources go through one path:
//
//	manifest bytes      against the digest (and size) that selected it
//	config bytes        against the manifest's config descriptor
//	each layer's blob   against its descriptor's digest and size, as streamed
//	each layer's tar    against the config's rootfs.diff_ids, as streamed
//
// Layers are checked while the flattener reads them rather than in a pass
// before, so that every blob is read once and what is flattened is exactly
// what was hashed (a file swapped between two reads proves nothing).

// verifiedImage is an image whose manifest and config are checked, and
// whose layers check their streams.
type verifiedImage struct {
	v1.Image
	digest      v1.Hash
	rawManifest []byte
	manifest    *v1.Manifest
	rawConfig   []byte
	config      *v1.ConfigFile
	layers      []*verifiedLayer
}

// verified checks img's manifest against want (the descriptor that named
// it) and its config against the manifest, and returns an image that
// serves those checked bytes and whose layers verify their streams. After
// the layers have been consumed, failure and unchecked tell whether they
// were all intact.
func verified(img v1.Image, want v1.Descriptor) (*verifiedImage, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading the image manifest: %w", err)
	}
	if err := checkBlob("the image manifest", "the index", raw, want); err != nil {
		return nil, err
	}
	man, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing the image manifest %s: %w", want.Digest, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the image config %s: %w", man.Config.Digest, err)
	}
	if err := checkBlob("the image config", "the manifest", rawCfg, man.Config); err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing the image config %s: %w", man.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, fmt.Errorf("the image config %s lists %d rootfs.diff_ids for the %d layers of manifest %s",
			man.Config.Digest, len(cfg.RootFS.DiffIDs), len(man.Layers), want.Digest)
	}
	v := &verifiedImage{Image: img, digest: want.Digest, rawManifest: raw, manifest: man, rawConfig: rawCfg, config: cfg}
	for i, desc := range man.Layers {
		// Looked up by the digest of the checked manifest, not through
		// img.Layers(), which would parse the manifest anew.
		l, err := img.LayerByDigest(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, desc.Digest, err)
		}
		v.layers = append(v.layers, &verifiedLayer{Layer: l, index: i, desc: desc, diffID: cfg.RootFS.DiffIDs[i]})
	}
	return v, nil
}

// checkBlob compares b with the descriptor namer gives for it.
func checkBlob(what, namer string, b []byte, want v1.Descriptor) error {
	got, n, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if got != want.Digest {
		return mismatch(what, namer, want.Digest, got)
	}
	if want.Size != 0 && n != want.Size {
		return fmt.Errorf("%s %s is %d bytes, but %s says %d", what, want.Digest, n, namer, want.Size)
	}
	return nil
}

func mismatch(what, namer string, want, got v1.Hash) error {
	return fmt.Errorf("%s hashes to %s, but %s names %s: tampered with or corrupt", what, got, namer, want)
}

// failure is the first failure of a layer stream: a blob that is not the
// published one explains whatever else went wrong while flattening.
func (v *verifiedImage) failure() error {
	for _, l := range v.layers {
		if l.err != nil {
			return l.err
		}
	}
	return nil
}

// unchecked reports a layer no stream was read to its end of (so that its
// digests were never compared), which a flattener that succeeded must not
// leave.
func (v *verifiedImage) unchecked() error {
	for _, l := range v.layers {
		if !l.ok {
			return fmt.Errorf("layer %d (%s) was not read to its end: its digests are unchecked", l.index, l.desc.Digest)
		}
	}
	return nil
}

func (v *verifiedImage) Layers() ([]v1.Layer, error) {
	ls := make([]v1.Layer, len(v.layers))
	for i, l := range v.layers {
		ls[i] = l
	}
	return ls, nil
}

func (v *verifiedImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	for _, l := range v.layers {
		if l.desc.Digest == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer %s in image %s", h, v.digest)
}

func (v *verifiedImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for _, l := range v.layers {
		if l.diffID == h {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no layer with diff_id %s in image %s", h, v.digest)
}

func (v *verifiedImage) Digest() (v1.Hash, error)            { return v.digest, nil }
func (v *verifiedImage) Size() (int64, error)                { return int64(len(v.rawManifest)), nil }
func (v *verifiedImage) RawManifest() ([]byte, error)        { return v.rawManifest, nil }
func (v *verifiedImage) Manifest() (*v1.Manifest, error)     { return v.manifest.DeepCopy(), nil }
func (v *verifiedImage) RawConfigFile() ([]byte, error)      { return v.rawConfig, nil }
func (v *verifiedImage) ConfigFile() (*v1.ConfigFile, error) { return v.config.DeepCopy(), nil }
func (v *verifiedImage) ConfigName() (v1.Hash, error)        { return v.manifest.Config.Digest, nil }

// verifiedLayer is a layer of a verifiedImage. ok and err record what its
// streams found (err: the first failure, a mismatch or a read error); the
// flattener reads layers one after the other, so they need no lock.
type verifiedLayer struct {
	v1.Layer
	index  int
	desc   v1.Descriptor
	diffID v1.Hash
	ok     bool  // a stream ended with both digests right
	err    error // the first failure of a stream
}

func (l *verifiedLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *verifiedLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *verifiedLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *verifiedLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l *verifiedLayer) what() string { return fmt.Sprintf("layer %d (%s)", l.index, l.desc.Digest) }

// Compressed is the blob, failing at its end (or as soon as it outgrows its
// descriptor) unless it is the blob the manifest names.
func (l *verifiedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", l.what(), err)
	}
	h, err := v1.Hasher(l.desc.Digest.Algorithm)
	if err != nil {
		rc.Close()
		return nil, fmt.Errorf("%s: %w", l.what(), err)
	}
	return &blobReader{rc: rc, layer: l, h: h}, nil
}

// blobReader hashes and counts a layer's blob as it is read, and returns
// the verdict instead of io.EOF. The verdict is sticky, so whoever reads on
// after the end (a decompressor, a drain) sees it too.
type blobReader struct {
	rc    io.ReadCloser
	layer *verifiedLayer
	h     hash.Hash
	n     int64
	end   error // io.EOF or why the blob is not the published one
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.end != nil {
		return 0, b.end
	}
	n, err := b.rc.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	l := b.layer
	switch {
	case b.n > l.desc.Size:
		// Stop at once: a blob swapped for a bigger one is not read on.
		b.end = fmt.Errorf("%s: its blob exceeds the %d bytes the manifest says", l.what(), l.desc.Size)
	case err == io.EOF:
		if got := sum(l.desc.Digest.Algorithm, b.h); got != l.desc.Digest {
			b.end = mismatch(fmt.Sprintf("the blob of layer %d", l.index), "the manifest", l.desc.Digest, got)
		} else if b.n != l.desc.Size {
			b.end = fmt.Errorf("%s: its blob is %d bytes, but the manifest says %d", l.what(), b.n, l.desc.Size)
		} else {
			b.end = io.EOF
		}
	case err != nil:
		b.end = fmt.Errorf("reading %s: %w", l.what(), err)
	default:
		return n, nil
	}
	if b.end != io.EOF && l.err == nil {
		l.err = b.end
	}
	return n, b.end
}

func sum(algorithm string, h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: algorithm, Hex: hex.EncodeToString(h.Sum(nil))}
}

func (b *blobReader) Close() error { return b.rc.Close() }

// Uncompressed decompresses the checked blob itself (gzip, zstd or plain
// tar, told by its first bytes, as go-containerregistry does) and fails at
// the end unless both the blob and its contents are the published ones.
func (l *verifiedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	blob := rc.(*blobReader)
	s := &layerStream{layer: l, blob: blob}
	if s.h, err = v1.Hasher(l.diffID.Algorithm); err != nil {
		blob.Close()
		return nil, fmt.Errorf("%s: diff_id: %w", l.what(), err)
	}
	br := bufio.NewReader(blob)
	magic, _ := br.Peek(4) // shorter blobs are plain (and fail as tars)
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			s.finish(err)
			blob.Close()
			return nil, s.end
		}
		s.dec, s.closeDec = zr, zr.Close
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br)
		if err != nil {
			blob.Close()
			return nil, fmt.Errorf("%s: zstd: %w", l.what(), err)
		}
		s.dec, s.closeDec = zr, func() error { zr.Close(); return nil }
	default:
		s.dec = br
	}
	return s, nil
}

// closeDrain bounds what Close reads of a stream its consumer left early:
// enough for the zero padding tar writers put after the end-of-archive
// marker, where a tar reader stops, but not a whole layer when the
// consumer stopped on an error.
const closeDrain = 1 << 20

// layerStream is a layer's uncompressed contents, hashed as they are read;
// its end is io.EOF only if the blob and the contents are both right.
type layerStream struct {
	layer    *verifiedLayer
	blob     *blobReader
	dec      io.Reader
	closeDec func() error
	h        hash.Hash
	end      error
}

func (s *layerStream) Read(p []byte) (int, error) {
	if s.end != nil {
		return 0, s.end
	}
	n, err := s.dec.Read(p)
	s.h.Write(p[:n])
	if err != nil {
		s.finish(err)
		return n, s.end
	}
	return n, nil
}

// finish settles the stream once the decompressor stopped with err.
func (s *layerStream) finish(err error) {
	l := s.layer
	// The blob's verdict first: it explains a decompression error (a
	// swapped blob is rarely a valid stream), and decompressors that stop
	// at their own trailer never reach its end. What is left to read is
	// bounded by the blob's declared size.
	if _, berr := io.Copy(io.Discard, s.blob); berr != nil {
		s.end = berr
	} else if err != io.EOF {
		s.end = fmt.Errorf("%s: decompressing: %w", l.what(), err)
	} else if got := sum(l.diffID.Algorithm, s.h); got != l.diffID {
		s.end = mismatch(fmt.Sprintf("the uncompressed content of layer %d (%s)", l.index, l.desc.Digest),
			fmt.Sprintf("the config's rootfs.diff_ids[%d]", l.index), l.diffID, got)
	} else {
		s.end = io.EOF
		l.ok = true
		return
	}
	if l.err == nil {
		l.err = s.end
	}
}

// Close reads on a little if the consumer stopped before the end, so that
// a tar reader stopping at its end-of-archive marker still gets the layer
// checked, then releases the decompressor and the blob.
func (s *layerStream) Close() error {
	if s.end == nil {
		io.Copy(io.Discard, io.LimitReader(s, closeDrain))
	}
	var errs []error
	if s.closeDec != nil {
		errs = append(errs, s.closeDec())
	}
	return errors.Join(append(errs, s.blob.Close())...)
}
