# shellcheck shell=bash
# Sourced by earthly.sh (bash). Defines kairos_setup_buildx, which makes
# `docker buildx` available without a Docker daemon and without touching
# ~/.docker:
#
#   - builds the docker-buildx CLI plugin pinned by this directory's go.mod
#     (from the Go module proxy) into
#     <cache>/bin/buildx-<sha256(go.mod+go.sum)[:16]>/docker-buildx,
#     only when it is not there yet (first run about 4 minutes on 2 cores);
#   - exports DOCKER_CONFIG=<cache>/docker, whose cli-plugins/docker-buildx
#     links to that binary, so `docker buildx ...` finds the plugin and keeps
#     its builder instances (buildx/instances/) there, not in ~/.docker;
#   - exports KAIROS_BUILDX=<path of the plugin binary>.
#
# <cache> is $1, else $KAIROS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/kairos.
# Safe under `set -euo pipefail`; returns non-zero (with a message) on failure.
# The `docker` client itself comes from the distro (Debian: docker.io).

_kairos_buildx_moddir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kairos_setup_buildx() {
	local cache=${1:-${KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairos}}
	local moddir=$_kairos_buildx_moddir
	local key dir bin tmp version plugins link start
	key=$(cat "$moddir/go.mod" "$moddir/go.sum" | sha256sum | cut -c1-16) || return 1
	dir="$cache/bin/buildx-$key"
	bin="$dir/docker-buildx"

	if [ ! -x "$bin" ]; then
		command -v go >/dev/null 2>&1 || { echo "kairos_setup_buildx: go is required to build docker-buildx" >&2; return 1; }
		version=$(awk '$1 == "github.com/docker/buildx" { print $2; exit } $1 == "require" && $2 == "github.com/docker/buildx" { print $3; exit }' "$moddir/go.mod")
		[ -n "$version" ] || { echo "kairos_setup_buildx: no github.com/docker/buildx requirement in $moddir/go.mod" >&2; return 1; }
		printf '\033[1m[earthly.sh]\033[0m %s\n' "building docker-buildx $version (first run only, ~4 min)" >&2
		start=$SECONDS
		mkdir -p "$dir" || return 1
		# Build beside the final name, then rename: an interrupted or
		# concurrent build never leaves a truncated docker-buildx behind.
		tmp="$bin.tmp.$$"
		if ! (cd "$moddir" && go build -mod=readonly -trimpath \
			-ldflags "-s -w -X github.com/docker/buildx/version.Version=$version" \
			-o "$tmp" github.com/docker/buildx/cmd/buildx); then
			rm -f "$tmp"
			echo "kairos_setup_buildx: building docker-buildx failed" >&2
			return 1
		fi
		mv -f "$tmp" "$bin" || { rm -f "$tmp"; return 1; }
		printf '\033[1m[earthly.sh]\033[0m %s\n' "built docker-buildx $version in $((SECONDS - start))s" >&2
	fi

	# A private Docker config: the plugin (a symlink, replaced atomically
	# when the key changes) and buildx's builder store live under it.
	plugins="$cache/docker/cli-plugins"
	link="$plugins/docker-buildx"
	mkdir -p "$plugins" || return 1
	if [ "$(readlink "$link" 2>/dev/null || true)" != "$bin" ]; then
		ln -sfn "$bin" "$link.tmp.$$" && mv -fT "$link.tmp.$$" "$link" || { rm -f "$link.tmp.$$"; return 1; }
	fi
	export DOCKER_CONFIG="$cache/docker"
	export KAIROS_BUILDX="$bin"
}
