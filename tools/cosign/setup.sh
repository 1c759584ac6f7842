# shellcheck shell=bash
# Sourced by earthly.sh (bash). Defines kairos_setup_cosign, which builds
# the cosign CLI pinned by this directory's go.mod (from the Go module
# proxy) into <cache>/bin/cosign-<sha256(go.mod+go.sum)[:16]>/cosign, only
# when it is not there yet (first run about 5 minutes on 2 cores), and
# exports KAIROS_COSIGN=<its path>. `kairos release --sign-key` runs it.
#
# <cache> is $1, else $KAIROS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kairos.
# Safe under `set -euo pipefail`; returns non-zero (with a message) on failure.

_kairos_cosign_moddir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kairos_setup_cosign() {
	local cache=${1:-${KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairos}}
	local moddir=$_kairos_cosign_moddir
	local key dir bin tmp version start
	key=$(cat "$moddir/go.mod" "$moddir/go.sum" | sha256sum | cut -c1-16) || return 1
	dir="$cache/bin/cosign-$key"
	bin="$dir/cosign"
	if [ ! -x "$bin" ]; then
		command -v go >/dev/null 2>&1 || { echo "kairos_setup_cosign: go is required to build cosign" >&2; return 1; }
		version=$(awk '$1 == "github.com/sigstore/cosign/v2" { print $2; exit } $1 == "require" && $2 == "github.com/sigstore/cosign/v2" { print $3; exit }' "$moddir/go.mod")
		[ -n "$version" ] || { echo "kairos_setup_cosign: no github.com/sigstore/cosign/v2 requirement in $moddir/go.mod" >&2; return 1; }
		printf '\033[1m[earthly.sh]\033[0m %s\n' "building cosign $version (first run only, ~5 min)" >&2
		start=$SECONDS
		mkdir -p "$dir" || return 1
		# Beside the final name, then renamed: never a truncated cosign.
		tmp="$bin.tmp.$$"
		if ! (cd "$moddir" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp" github.com/sigstore/cosign/v2/cmd/cosign); then
			rm -f "$tmp"
			echo "kairos_setup_cosign: building cosign failed" >&2
			return 1
		fi
		mv -f "$tmp" "$bin" || { rm -f "$tmp"; return 1; }
		printf '\033[1m[earthly.sh]\033[0m %s\n' "built cosign $version in $((SECONDS - start))s" >&2
	fi
	export KAIROS_COSIGN="$bin"
}
