// Package e2e holds the end-to-end tests: they build the images and media
// with our tools (fixtures_test.go, once per run, only what the selected
// tests need), drive the gateway image through BuildKit and buildx, and boot
// the artifacts in QEMU to check the running system from inside. They carry
// the "e2e" build tag; ./earthly.sh +test installs what the machine needs
// (QEMU, firmware, BuildKit, skopeo, docker-registry, buildx) and runs them.
package e2e
