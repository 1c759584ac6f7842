#!/usr/bin/env bash
# Benchmark (not a test): boot times of our live ISO and installed disk
# against plain Debian made from the same base and kernel, in one run
# (see tests/bench/boot/main.go). As root; QEMU, OVMF and BuildKit as
# ./earthly.sh installs them.
#
#   tests/bench/boot.sh [-iso X.iso -image X.oci.tar]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
exec go run ./tests/bench/boot "$@"
