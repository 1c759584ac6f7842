//go:build tools

// Package tools pins cosign, which signs a release's images and its
// SHA256SUMS (`kairos release --sign-key`) in the format stock `cosign
// verify --key` checks. It is a module of its own so that cosign's
// dependencies never enter the main module (the agent verifies signatures
// with internal/signature, not with cosign); tools/setup.sh, sourced
// by earthly.sh, builds it with
//
//	go build -o <dir>/cosign github.com/sigstore/cosign/v2/cmd/cosign
package tools

import (
	_ "github.com/sigstore/cosign/v2/cmd/cosign"
)
