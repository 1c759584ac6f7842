// Package version carries the version of the Kairos tools, stamped at link
// time with -ldflags "-X github.com/kairos-io/kairos/internal/version.Version=...".
package version

// Version is the release these binaries were built as.
var Version = "v0.0.0-dev"
