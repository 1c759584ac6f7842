// Package cloudconfig is the configuration language of a node: upstream
// Kairos cloud-configs and yip stage files, as Go types (model.go) read by
// one decoder (decode.go) for `kairos-agent validate` and for boot alike,
// so that what validates is exactly what runs. It also merges a node's
// config files and fetches its datasources.
package cloudconfig
