# shellcheck shell=bash
# Sourced by earthly.sh (bash). Defines kairos_setup_tool, which builds a
# CLI pinned by a module of its own under tools/ (cosign, syft: their
# dependencies never enter the main module) from the Go module proxy into
# <cache>/bin/<name>-<sha256(go.mod+go.sum)[:16]>/<name>, only when it is
# not there yet (first run a few minutes on 2 cores), and exports <var> as
# its path:
#
#   kairos_setup_tool KAIROS_COSIGN cosign github.com/sigstore/cosign/v2 cmd/cosign [<cache>]
#
# <cache> defaults to $KAIROS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kairos.
# Safe under `set -euo pipefail`; returns non-zero (with a message) on failure.

_kairos_tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kairos_setup_tool() {
	local var=$1 name=$2 module=$3 pkg=$4
	local cache=${5:-${KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairos}}
	local moddir=$_kairos_tools_dir/$name
	local key dir bin tmp version start
	key=$(cat "$moddir/go.mod" "$moddir/go.sum" | sha256sum | cut -c1-16) || return 1
	dir="$cache/bin/$name-$key"
	bin="$dir/$name"
	if [ ! -x "$bin" ]; then
		command -v go >/dev/null 2>&1 || { echo "kairos_setup_tool: go is required to build $name" >&2; return 1; }
		version=$(awk -v m="$module" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$moddir/go.mod")
		[ -n "$version" ] || { echo "kairos_setup_tool: no $module requirement in $moddir/go.mod" >&2; return 1; }
		printf '\033[1m[earthly.sh]\033[0m %s\n' "building $name $version (first run only, a few minutes)" >&2
		start=$SECONDS
		mkdir -p "$dir" || return 1
		# Beside the final name, then renamed: never a truncated binary.
		tmp="$bin.tmp.$$"
		if ! (cd "$moddir" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$tmp" "$module/$pkg"); then
			rm -f "$tmp"
			echo "kairos_setup_tool: building $name failed" >&2
			return 1
		fi
		mv -f "$tmp" "$bin" || { rm -f "$tmp"; return 1; }
		printf '\033[1m[earthly.sh]\033[0m %s\n' "built $name $version in $((SECONDS - start))s" >&2
	fi
	export "$var=$bin"
}
