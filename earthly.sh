#!/usr/bin/env bash
# Build Kairos images and artifacts, or run the tests, with the upstream
# interface:
#
#   ./earthly.sh +<target> [--FLAVOR=debian] [--VERSION=v1.0.0] [--ARG=value ...]
#
# Targets: +image +iso +all +test. When Earthly is installed (and
# KAIROS_NATIVE is not set) this hands over to it and the Earthfile; otherwise
# it runs the same targets natively through `kairos build`, after installing
# what they need (idempotent; a no-op when everything is present).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

TARGETS=(image iso all test)
CACHE=${KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairos}
OUT=${KAIROS_OUTPUT:-build}

log() { printf '\033[1m[earthly.sh]\033[0m %s\n' "$*" >&2; }
die() { printf '[earthly.sh] error: %s\n' "$*" >&2; exit 1; }

usage() {
	cat <<EOF
Usage: ./earthly.sh +<target> [--FLAVOR=<flavor>] [--VERSION=<version>] [--<ARG>=<value>...]

Targets:
  +image   the Kairos OCI image as $OUT/<name>.oci.tar (+ .sha256)
  +iso     the live/installer ISO as $OUT/<name>.iso (+ .sha256)
  +all     +image and every artifact
  +test    unit tests, then the end-to-end tests (build the ISO, boot it in QEMU)

Arguments (build args of the Earthfile):
  --FLAVOR          distro: $(flavor_names | tr '\n' ' ')(default debian)
  --FLAVOR_RELEASE  release of the flavor, when it has several
  --VERSION         KAIROS_VERSION and part of every artifact name (default: git describe)
  --VARIANT         core (default) or standard
  --MODEL           generic (default)
  --BASE_IMAGE      base image instead of the flavor's

Names: kairos-<flavor>-<release>-<variant>-<arch>-<model>-<version>.<ext>
EOF
}

flavor_names() { for f in flavors/*-*.yaml; do [ "$f" = flavors/package-managers.yaml ] || basename "$f" .yaml; done | sed 's/-[^-]*$//' | sort -u; }

main() {
# --- arguments ----------------------------------------------------------------
target=""
declare -A args=()
for a in "$@"; do
	case "$a" in
	-h | --help) usage; exit 0 ;;
	+*) [ -z "$target" ] || die "one target at a time (got +$target and $a)"; target=${a#+} ;;
	--*=*) k=${a%%=*}; k=${k#--}; args[$k]=${a#*=} ;;
	*) die "unexpected argument '$a' (want +<target> or --ARG=value; see --help)" ;;
	esac
done
[ -n "$target" ] || { usage >&2; exit 2; }
valid=0
for t in "${TARGETS[@]}"; do [ "$t" = "$target" ] && valid=1; done
[ $valid = 1 ] || die "unknown target +$target (valid: $(printf '+%s ' "${TARGETS[@]}"))"

if command -v earthly >/dev/null 2>&1 && [ -z "${KAIROS_NATIVE:-}" ]; then
	eargs=()
	for k in "${!args[@]}"; do eargs+=("--$k=${args[$k]}"); done
	exec earthly "+$target" "${eargs[@]}"
fi

FLAVOR=${args[FLAVOR]:-debian}
if ! ls "flavors/$FLAVOR"-*.yaml >/dev/null 2>&1; then
	die "unknown flavor '$FLAVOR' (valid: $(flavor_names | tr '\n' ' '))"
fi
if [ -z "${args[VERSION]:-}" ]; then
	args[VERSION]=$(git describe --tags --always --dirty 2>/dev/null || echo v0.0.0)
	case "${args[VERSION]}" in v*) ;; *) args[VERSION]="v0.0.0-${args[VERSION]}" ;; esac
fi
VERSION=${args[VERSION]}

# --- setup: everything the native path needs -----------------------------------
APT_PACKAGES=(runc mmdebstrap squashfs-tools xorriso mtools dosfstools e2fsprogs gdisk fdisk
	qemu-system-x86 qemu-utils ovmf skopeo umoci ca-certificates)

setup_apt() {
	local missing=()
	# One dpkg-query for all packages keeps the no-op case fast.
	mapfile -t installed < <(dpkg-query -W -f='${Package} ${Status}\n' "${APT_PACKAGES[@]}" 2>/dev/null | awk '$4 == "installed" {print $1}')
	for p in "${APT_PACKAGES[@]}"; do
		[[ " ${installed[*]} " == *" $p "* ]] || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or install them with apt-get"
	log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_go() {
	command -v go >/dev/null 2>&1 || die "Go is required (go.mod asks for $(awk '/^go /{print $2}' go.mod)); install it from go.dev and retry"
}

# buildkitd and buildctl, built from the BuildKit version pinned in go.mod and
# cached by the content of go.mod + go.sum, so a dependency change rebuilds.
setup_buildkit() {
	local key
	key=$(cat go.mod go.sum | sha256sum | cut -c1-16)
	local dir="$CACHE/bin/buildkit-$key"
	if [ ! -x "$dir/buildkitd" ] || [ ! -x "$dir/buildctl" ]; then
		log "building buildkitd and buildctl from go.mod (first run only, a few minutes)"
		mkdir -p "$dir.tmp"
		go build -o "$dir.tmp/buildkitd" github.com/moby/buildkit/cmd/buildkitd
		go build -o "$dir.tmp/buildctl" github.com/moby/buildkit/cmd/buildctl
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
	fi
	export PATH="$dir:$PATH"
}

# Our own binaries: the agent is static, as it runs in every image and initrd.
build_tools() {
	local ldflags="-s -w -X github.com/kairos-io/kairos/internal/version.Version=$VERSION"
	mkdir -p "$OUT/bin"
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/kairos-agent" ./cmd/kairos-agent
	go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/kairos" ./cmd/kairos
}

setup() {
	local start=$SECONDS
	setup_apt
	setup_go
	setup_buildkit
	build_tools
	log "setup done in $((SECONDS - start))s"
}

# Build args for kairos build, from the --ARG=value pairs.
build_args() {
	local out=()
	for k in "${!args[@]}"; do out+=(--build-arg "$k=${args[$k]}"); done
	printf '%s\n' "${out[@]}"
}

kairos_build() {
	local bargs
	mapfile -t bargs < <(build_args)
	"$OUT/bin/kairos" build --flavor "$FLAVOR" --agent "$OUT/bin/kairos-agent" --output "$OUT" "${bargs[@]}" "$@"
}

# In CI the private daemon must not outlive the run.
stop_daemon_in_ci() {
	[ "${CI:-}" = true ] || return 0
	local pidfile="$CACHE/buildkit/buildkitd.pid"
	[ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
}

case "$target" in
image) setup; kairos_build --target image ;;
iso) setup; kairos_build --target iso ;;
all) setup; kairos_build --target image --target all ;;
test)
	setup
	trap stop_daemon_in_ci EXIT
	log "unit tests"
	go vet ./...
	go test -count=1 ./...
	log "end-to-end: building the Debian image and ISO"
	testout="$OUT/e2e"
	VERSION=v0.0.0-e2e
	build_tools
	"$OUT/bin/kairos" build --flavor debian --version "$VERSION" --agent "$OUT/bin/kairos-agent" \
		--output "$testout" --progress plain --target image --target iso
	log "end-to-end: checking the artifacts and booting them in QEMU"
	name="kairos-debian-bookworm-core-amd64-generic-$VERSION"
	mkdir -p "$testout/logs"
	KAIROS_E2E_ISO="$here/$testout/$name.iso" \
	KAIROS_E2E_IMAGE="$here/$testout/$name.oci.tar" \
	KAIROS_E2E_VERSION="$VERSION" \
	KAIROS_E2E_LOGS="$here/$testout/logs" \
		go test -count=1 -tags e2e -timeout 50m -v ./tests/e2e/
	;;
esac
}

# The whole script is read before anything runs, so editing it (or a git
# checkout) during a long build cannot change what the running build does.
main "$@"
exit $?
