#!/usr/bin/env bash
# Benchmark (not a test): what a one-line change to the user's overlay costs
# a `+iso` build, as a ratio of the cold build of the same ISO, in one run.
#
#   tests/bench/incremental.sh
#
# Cold: `kairos build --target iso --no-cache` (every step runs again; the
# package downloads stay in their cache mounts, as on a builder that built
# before). Warm: the same build after changing one line of an overlay file.
# Also: the version changed (a new release of the same packages). Target
# from issue 18: warm / cold <= 0.10.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
work=$(mktemp -d /var/tmp/kairos-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-agent" ./cmd/kairos-agent
CGO_ENABLED=0 go build -trimpath -o "$work/kairos-frontend" ./cmd/kairos-frontend
go build -o "$work/kairos" ./cmd/kairos
mkdir -p "$work/overlay/etc"
echo "welcome to kairos (one)" > "$work/overlay/etc/motd"

build() {
	local s=$SECONDS
	"$work/kairos" build --flavor debian --target iso --overlay "$work/overlay" --agent "$work/kairos-agent" \
		--writer "$work/kairos-frontend" --progress plain --output "$work/out" "$@" >"$work/log" 2>&1 ||
		{ tail -30 "$work/log" >&2; exit 1; }
	echo $((SECONDS - s))
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

cold=$(build --version v1.0.0 --no-cache)
echo "welcome to kairos (two)" > "$work/overlay/etc/motd"
overlay=$(build --version v1.0.0)
# boot.sh speaks only when it runs (a cached step prints nothing of its own).
ran=no; grep -q 'kairos-boot: initrd' "$work/log" && ran=yes
version=$(build --version v1.0.1)
printf '%-34s %6s %8s\n' "+iso build" "s" "ratio"
printf '%-34s %6d %8s\n' "cold (--no-cache)" "$cold" "1.00"
printf '%-34s %6d %8s\n' "one overlay line changed" "$overlay" "$(ratio "$overlay" "$cold")"
printf '%-34s %6d %8s\n' "new version, same packages" "$version" "$(ratio "$version" "$cold")"
echo "initrd made again after the overlay change: $ran (target: no; warm/cold <= 0.10)"
