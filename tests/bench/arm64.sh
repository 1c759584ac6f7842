#!/usr/bin/env bash
# Benchmark (not a test): what building for arm64 on this amd64 machine
# costs, as a ratio of the same build for amd64, in one run.
#
#   tests/bench/arm64.sh
#
# Each is `kairos build --target iso` on a new BuildKit daemon with empty
# state (packages from the mirror; the bootstrapped base image is kairos'
# own cache, outside BuildKit, and made first, so neither build pays for
# it). The amd64 build runs natively; the arm64 one runs every build step
# (apt, dpkg, dracut) under QEMU user emulation, while the artifact writer
# (squashfs, ISO) stays native. The base bootstrap itself is timed apart.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
[ "$(go env GOARCH)" = amd64 ] || { echo "run on an amd64 machine" >&2; exit 1; }
work=$(mktemp -d /var/tmp/kairos-bench.XXXXXX)
export SOURCE_DATE_EPOCH=1700000000
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-agent" ./cmd/kairos-agent
CGO_ENABLED=0 GOARCH=arm64 go build -trimpath -o "$work/kairos-agent-arm64" ./cmd/kairos-agent
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-p2p" ./cmd/kairos-p2p
CGO_ENABLED=0 GOARCH=arm64 go build -trimpath -o "$work/kairos-p2p-arm64" ./cmd/kairos-p2p
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-frontend" ./cmd/kairos-frontend
go build -o "$work/kairos" ./cmd/kairos
command -v buildkitd >/dev/null || { echo "buildkitd not on PATH (./earthly.sh builds it)" >&2; exit 1; }
daemon=
start_daemon() {
	buildkitd --root "$work/buildkit-$1" --addr "unix://$work/buildkitd-$1.sock" --oci-worker=true \
		--containerd-worker=false --oci-worker-net=host >"$work/buildkitd-$1.log" 2>&1 &
	daemon=$!
	export BUILDKIT_HOST=unix://$work/buildkitd-$1.sock
}
stop_daemon() {
	[ -n "$daemon" ] || return 0
	kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true
	grep -F "$work" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l || true
	daemon=
}
cleanup() { stop_daemon; rm -rf "$work"; }
trap cleanup EXIT

# The bases first (cached under ~/.cache/kairos/base after the first run).
bases=""
for arch in amd64 arm64; do
	s=$SECONDS
	"$work/kairos" base --flavor debian --platform "linux/$arch" >/dev/null 2>"$work/base.log" ||
		{ tail -20 "$work/base.log" >&2; exit 1; }
	bases="$bases $arch $((SECONDS - s))s"
done

build() {
	local arch=$1 s
	start_daemon "$arch"
	s=$SECONDS
	"$work/kairos" build --flavor debian --target iso --platform "linux/$arch" \
		--agent "$work/kairos-agent" --agent "$work/kairos-agent-arm64" --writer "$work/kairos-frontend" \
		--progress plain --output "$work/out" >"$work/log-$arch" 2>&1 ||
		{ tail -30 "$work/log-$arch" >&2; exit 1; }
	echo $((SECONDS - s))
	stop_daemon
}
# A step's time from the plain progress: "#N [x] <name>" ... "#N DONE 12.3s".
step() { awk -v n="$2" '$0 ~ "\\[.*\\] " n {id=$1} $1 == id && $2 == "DONE" {print $3; exit}' "$work/log-$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

amd=$(build amd64)
arm=$(build arm64)
printf '%-26s %8s %8s %8s\n' "+iso, empty builder" "amd64" "arm64" "ratio"
printf '%-26s %7ss %7ss %8s\n' "whole build" "$amd" "$arm" "$(ratio "$arm" "$amd")"
for s in "install packages" "kernel, initrd, boot assets" "iso"; do
	a=$(step amd64 "$s"); b=$(step arm64 "$s")
	[ -n "$a" ] && [ -n "$b" ] && printf '%-26s %8s %8s %8s\n' "  $s" "$a" "$b" "$(ratio "${b%s}" "${a%s}")"
done
echo "base bootstrap (cached after the first run):$bases"
