package signature

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kairos-io/kairos/tests/cosigntool"
	"github.com/kairos-io/kairos/tests/registry"
)

// An image signed by stock cosign verifies with the key; an unsigned one,
// or one signed by another key, does not; stock cosign agrees.
func TestVerifyImageSignedByCosign(t *testing.T) {
	keys, otherKeys := cosigntool.KeyPair(t), cosigntool.KeyPair(t)
	pubPEM, _ := os.ReadFile(cosigntool.Pub(keys))
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.Start(t, registry.FreeAddr(t))
	push := func(tag string) (name.Repository, v1.Hash) {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(reg.Addr + "/kairos/debian:" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		return ref.Context(), d
	}
	sign := func(dir string, repo name.Repository, d v1.Hash) {
		cosigntool.Sign(t, dir, repo.String()+"@"+d.String())
	}
	ctx := context.Background()

	repo, signed := push("signed")
	sign(keys, repo, signed)
	if err := VerifyImage(ctx, repo, signed, pub); err != nil {
		t.Errorf("a signed image: %v", err)
	}
	cosigntool.Run(t, keys, "verify", "--key", "cosign.pub", "--insecure-ignore-tlog=true", "--allow-http-registry", repo.String()+"@"+signed.String())

	_, unsigned := push("unsigned")
	if err := VerifyImage(ctx, repo, unsigned, pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("an unsigned image: %v, want ErrUnsigned", err)
	}
	_, other := push("other")
	sign(otherKeys, repo, other)
	if err := VerifyImage(ctx, repo, other, pub); !errors.Is(err, ErrUnsigned) {
		t.Errorf("an image signed by another key: %v, want ErrUnsigned", err)
	}
}

// A blob signed with cosign sign-blob verifies; changed, it does not.
func TestVerifyBlob(t *testing.T) {
	keys := cosigntool.KeyPair(t)
	pubPEM, _ := os.ReadFile(cosigntool.Pub(keys))
	pub, err := ParsePublicKey(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	sums := []byte("abc  kairos.iso\n")
	if err := os.WriteFile(filepath.Join(keys, "SHA256SUMS"), sums, 0o644); err != nil {
		t.Fatal(err)
	}
	cosigntool.Run(t, keys, "sign-blob", "--key", "cosign.key", "--tlog-upload=false", "--output-signature", "SHA256SUMS.sig", "SHA256SUMS")
	sig, err := os.ReadFile(filepath.Join(keys, "SHA256SUMS.sig"))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBlob(pub, sums, sig); err != nil {
		t.Errorf("signed blob: %v", err)
	}
	if err := VerifyBlob(pub, []byte("abd  kairos.iso\n"), sig); !errors.Is(err, ErrUnsigned) {
		t.Errorf("changed blob: %v", err)
	}
}

func TestParsePublicKey(t *testing.T) {
	for _, bad := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
