#!/usr/bin/env bash
# Benchmark (not a test): what a one-line change to the user's overlay costs
# a `+iso` build, as a ratio of the cold build of the same ISO, in one run.
#
#   tests/bench/incremental.sh
#
# Cold: `kairos build --target iso` on a new BuildKit daemon with empty
# state (the packages come from the mirror; the bootstrapped base image is
# kairos' own cache, outside BuildKit). Warm: the same build on that daemon
# after changing one line of an overlay file; then after changing the
# version (a new release of the same packages). Target from issue 18:
# warm / cold <= 0.10.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
work=$(mktemp -d /var/tmp/kairos-bench.XXXXXX)
export SOURCE_DATE_EPOCH=1700000000
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-agent" ./cmd/kairos-agent
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-p2p" ./cmd/kairos-p2p
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-frontend" ./cmd/kairos-frontend
go build -o "$work/kairos" ./cmd/kairos
mkdir -p "$work/overlay/etc"
echo "welcome to kairos (one)" > "$work/overlay/etc/motd"
command -v buildkitd >/dev/null || { echo "buildkitd not on PATH (./earthly.sh builds it)" >&2; exit 1; }
buildkitd --root "$work/buildkit" --addr "unix://$work/buildkitd.sock" --oci-worker=true \
	--containerd-worker=false --oci-worker-net=host >"$work/buildkitd.log" 2>&1 &
daemon=$!
cleanup() {
	kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null || true
	grep -F "$work" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l || true
	rm -rf "$work"
}
trap cleanup EXIT
export BUILDKIT_HOST=unix://$work/buildkitd.sock

build() {
	local s=$SECONDS
	"$work/kairos" build --flavor debian --target iso --overlay "$work/overlay" --agent "$work/kairos-agent" \
		--writer "$work/kairos-frontend" --progress plain --output "$work/out" "$@" >"$work/log" 2>&1 ||
		{ tail -30 "$work/log" >&2; exit 1; }
	echo $((SECONDS - s))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cold=$(build --version v1.0.0)
echo "welcome to kairos (two)" > "$work/overlay/etc/motd"
overlay=$(build --version v1.0.0)
# boot.sh speaks only when it runs (a cached step prints nothing of its own).
ran=no; grep -q 'kairos-boot: initrd' "$work/log" && ran=yes
blocks=$(grep -o '[0-9]* of [0-9]* blocks from the block cache' "$work/log" | tail -n1)
version=$(build --version v1.0.1)
printf '%-34s %6s %8s\n' "+iso build" "s" "ratio"
printf '%-34s %6d %8s\n' "cold (empty builder)" "$cold" "1.00"
printf '%-34s %6d %8s\n' "one overlay line changed" "$overlay" "$(ratio "$overlay" "$cold")"
printf '%-34s %6d %8s\n' "new version, same packages" "$version" "$(ratio "$version" "$cold")"
echo "after the overlay change: initrd made again: $ran (target: no); squashfs: ${blocks:-no block cache}; target warm/cold <= 0.10"
