//go:build tools

// Package tools pins syft, which writes a release image's SBOM from the
// image's own package databases (dpkg, rpm, apk) and binaries (`kairos
// release`). It is a module of its own so that syft's dependencies never
// enter the main module; tools/setup.sh, sourced by earthly.sh, builds it with
//
//	go build -o <dir>/syft github.com/anchore/syft/cmd/syft
package tools

import (
	_ "github.com/anchore/syft/cmd/syft"
)
