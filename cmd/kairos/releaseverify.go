package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/cobra"

	"github.com/kairos-io/kairos/internal/matrix"
	"github.com/kairos-io/kairos/internal/pipeline"
	"github.com/kairos-io/kairos/internal/rootfs"
	"github.com/kairos-io/kairos/internal/signature"
)

func newReleaseVerifyCmd() *cobra.Command {
	var key string
	var insecure bool
	cmd := &cobra.Command{
		Use:   "verify --key cosign.pub <release directory>",
		Short: "Check a release: SHA256SUMS's signature, every file, every image's tag and signature",
		Long: `Check a release directory written by 'kairos release --sign-key': SHA256SUMS
is signed by the key (SHA256SUMS.sig) and every file matches it; each image
of release.json is still what its tag points at, and carries a signature by
the key (cosign's format, as 'cosign verify --key' checks).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pemData, err := os.ReadFile(key)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			pub, err := signature.ParsePublicKey(pemData)
			if err != nil {
				return fmt.Errorf("--key %s: %w", key, err)
			}
			return verifyRelease(cmd, args[0], pub, insecure)
		},
	}
	cmd.Flags().StringVar(&key, "key", "", "the cosign public key (cosign.pub)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow a registry over plain HTTP that is not on loopback")
	cmd.MarkFlagRequired("key")
	return cmd
}

func verifyRelease(cmd *cobra.Command, dir string, pub any, insecure bool) error {
	out := cmd.OutOrStdout()
	sumsPath := filepath.Join(dir, matrix.SumsFile)
	sums, err := os.ReadFile(sumsPath)
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(sumsPath + ".sig")
	if err != nil {
		return fmt.Errorf("%w (the release was not signed?)", err)
	}
	if err := signature.VerifyBlob(pub, sums, sig); err != nil {
		return fmt.Errorf("%s: %w", sumsPath, err)
	}
	fmt.Fprintf(out, "%s: signed by the key\n", sumsPath)
	// Every file listed matches; then release.json, listed, is trusted.
	listed := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(sums))
	for sc.Scan() {
		sum, file, ok := strings.Cut(sc.Text(), "  ")
		if !ok || strings.Contains(file, "..") || filepath.IsAbs(file) {
			return fmt.Errorf("%s: a line that is not <sha256>  <file>: %q", sumsPath, sc.Text())
		}
		listed[file] = sum
	}
	check, err := matrix.Sums(dir)
	if err != nil {
		return err
	}
	for _, f := range check {
		if listed[f.Name] != f.SHA256 {
			return fmt.Errorf("%s: not as SHA256SUMS lists it", filepath.Join(dir, f.Name))
		}
		delete(listed, f.Name)
	}
	for f := range listed {
		return fmt.Errorf("%s: listed in SHA256SUMS, missing", filepath.Join(dir, f))
	}
	fmt.Fprintf(out, "%d files match SHA256SUMS\n", len(check))
	data, err := os.ReadFile(filepath.Join(dir, "release.json"))
	if err != nil {
		return err
	}
	var man pipeline.Manifest
	if err := json.Unmarshal(data, &man); err != nil {
		return fmt.Errorf("release.json: %w", err)
	}
	var failed []string
	for _, im := range man.Images {
		if im.Error != "" {
			continue
		}
		if err := verifyImage(cmd, im, pub, insecure); err != nil {
			failed = append(failed, err.Error())
			fmt.Fprintf(out, "FAILED %s: %v\n", im.Ref, err)
			continue
		}
		fmt.Fprintf(out, "%s@%s: signed by the key\n", im.Ref, im.Digest)
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "; "))
	}
	return nil
}

// verifyImage checks that the tag still names the released digest, and
// that the digest is signed.
func verifyImage(cmd *cobra.Command, im pipeline.ImageRecord, pub any, insecure bool) error {
	ref, err := name.ParseReference(im.Ref, rootfs.NameOptions(insecure || pipeline.HTTPRegistry(im.Ref, false))...)
	if err != nil {
		return err
	}
	want, err := v1.NewHash(im.Digest)
	if err != nil {
		return err
	}
	opts := rootfs.RemoteOptions(cmd.Context(), insecure)
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return fmt.Errorf("resolving the tag: %w", err)
	}
	if err := signature.VerifyImage(cmd.Context(), ref.Context(), want, pub, opts...); err != nil {
		return err
	}
	if desc.Digest != want {
		if err := signature.VerifyImage(cmd.Context(), ref.Context(), desc.Digest, pub, opts...); err != nil {
			return fmt.Errorf("the tag now points at %s, not the released %s, which is %w", desc.Digest, want, err)
		}
		return fmt.Errorf("the tag now points at %s, not the released %s (signed too)", desc.Digest, want)
	}
	return nil
}
