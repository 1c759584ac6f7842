//go:build tools

// Package tools pins the docker buildx CLI plugin that the end-to-end tests
// drive (`docker buildx build --builder <remote buildkitd>`). It is a module
// of its own so that buildx's dependencies never enter the main module; it is
// built by setup.sh (sourced by earthly.sh) with
//
//	go build -o <dir>/docker-buildx github.com/docker/buildx/cmd/buildx
package tools

import (
	_ "github.com/docker/buildx/cmd/buildx"
)
