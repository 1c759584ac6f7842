// Package signature checks cosign's keyed signatures, as `cosign verify
// --key` and `cosign verify-blob --key` do, with the standard library's
// ECDSA and Ed25519 (cosign's key types) and go-containerregistry: the
// agent checks an upgrade image before writing anything, without linking
// cosign.
//
// The format (cosign's "simple signing" scheme): the signatures of the
// image <repo>@sha256:<hex> are the layers of the image tagged
// <repo>:sha256-<hex>.sig; each layer's content is a JSON payload whose
// critical.image.docker-manifest-digest names the image, and its
// dev.cosignproject.cosign/signature annotation is the base64 signature of
// the payload. A blob's signature (sign-blob) is the base64 signature of
// the blob.
package signature

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Bounds on what a registry hands over: signatures are small.
const (
	maxLayers  = 64
	maxPayload = 64 << 10
	maxKey     = 16 << 10
)

const (
	payloadType     = "cosign container image signature"
	signatureAnnot  = "dev.cosignproject.cosign/signature"
	simpleSigningMT = "application/vnd.dev.cosign.simplesigning.v1+json"
)

// ErrUnsigned is an image with no signature by the key.
var ErrUnsigned = errors.New("no valid signature by the key")

// ParsePublicKey reads a PEM public key (cosign.pub): ECDSA or Ed25519.
func ParsePublicKey(data []byte) (crypto.PublicKey, error) {
	if len(data) > maxKey {
		return nil, errors.New("not a public key: too big")
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
	}
	k, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the public key: %w", err)
	}
	switch k.(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("a %T key: cosign keys are ECDSA or Ed25519", k)
}

// VerifyBlob checks a blob's base64 signature (cosign sign-blob
// --output-signature) against key.
func VerifyBlob(key crypto.PublicKey, blob, sigB64 []byte) error {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(sigB64)))
	if err != nil {
		return fmt.Errorf("the signature is not base64: %w", err)
	}
	if !verify(key, blob, sig) {
		return ErrUnsigned
	}
	return nil
}

func verify(key crypto.PublicKey, msg, sig []byte) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		h := sha256.Sum256(msg)
		return ecdsa.VerifyASN1(k, h[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	}
	return false
}

// SignatureTag is where cosign keeps the signatures of digest in repo.
func SignatureTag(repo name.Repository, digest v1.Hash) name.Tag {
	return repo.Tag(digest.Algorithm + "-" + digest.Hex + ".sig")
}

// VerifyImage checks that the image digest of repo carries a signature
// by key whose payload names that digest. It says nothing of what a tag
// points at: callers resolve the tag once, verify the digest, and pull by
// digest.
func VerifyImage(ctx context.Context, repo name.Repository, digest v1.Hash, key crypto.PublicKey, opts ...remote.Option) error {
	tag := SignatureTag(repo, digest)
	img, err := remote.Image(tag, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s@%s: %w (no signature at %s)", repo, digest, ErrUnsigned, tag)
		}
		return fmt.Errorf("%s@%s: reading its signatures: %w", repo, digest, err)
	}
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	if len(m.Layers) > maxLayers {
		return fmt.Errorf("%s: %d signatures, more than %d", tag, len(m.Layers), maxLayers)
	}
	for _, l := range m.Layers {
		sigB64, ok := l.Annotations[signatureAnnot]
		if !ok || string(l.MediaType) != simpleSigningMT || l.Size > maxPayload || l.Size < 0 {
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			continue
		}
		payload, err := readAll(layer)
		if err != nil || !names(payload, digest) {
			continue
		}
		if VerifyBlob(key, payload, []byte(sigB64)) == nil {
			return nil
		}
	}
	return fmt.Errorf("%s@%s: %w", repo, digest, ErrUnsigned)
}

// readAll reads a signature payload, checked against its digest
// (Compressed is the blob as stored: cosign's payloads are not compressed)
// and bounded.
func readAll(l v1.Layer) ([]byte, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxPayload {
		return nil, errors.New("payload too big")
	}
	want, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if got := sha256.Sum256(data); want.Algorithm != "sha256" || fmt.Sprintf("%x", got) != want.Hex {
		return nil, errors.New("payload does not match its digest")
	}
	return data, nil
}

// names says whether a payload is a container image signature of digest.
func names(payload []byte, digest v1.Hash) bool {
	var p struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
			Type string `json:"type"`
		} `json:"critical"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return false
	}
	return p.Critical.Type == payloadType && p.Critical.Image.Digest == digest.String()
}
