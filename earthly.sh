#!/usr/bin/env bash
# Build Kairos images and artifacts, or run the tests, with the upstream
# interface:
#
#   ./earthly.sh +<target> [--FLAVOR=debian] [--VERSION=v1.0.0] [--ARG=value ...]
#
# Targets are the Earthfile's (one table: this script reads it). When Earthly is installed (and
# KAIROS_NATIVE is not set) this hands over to it and the Earthfile; otherwise
# it runs the same targets natively through `kairos build`, after installing
# what they need (idempotent; a no-op when everything is present).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

# The public targets are the Earthfile's, minus its internal helpers.
mapfile -t TARGETS < <(sed -n 's/^\([a-z][a-z0-9-]*\):$/\1/p' Earthfile | grep -vx -e toolchain -e native)
CACHE=${KAIROS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kairos}
OUT=${KAIROS_OUTPUT:-build}

# Each line says how long the run has taken (bash's SECONDS): CI logs show
# where the time goes.
log() { printf '\033[1m[earthly.sh %dm%02ds]\033[0m %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }
die() { printf '[earthly.sh] error: %s\n' "$*" >&2; exit 1; }

usage() {
	cat <<EOF
Usage: ./earthly.sh +<target> [--FLAVOR=<flavor>] [--VERSION=<version>] [--<ARG>=<value>...]

Targets:
$(target_help)

Arguments (build args of the Earthfile):
  --FLAVOR          distro (default debian), its releases, the default marked, and upstream's names:
$(flavor_releases)
  --FLAVOR_RELEASE  release of the flavor (default: the one marked)
  --VERSION         KAIROS_VERSION and part of every artifact name (default: git describe)
  --VARIANT         core (default) or standard
  --MODEL           generic (default)
  --BASE_IMAGE      base image instead of the flavor's
  --K3S_VERSION     k3s release of the standard variant
  --NETBOOT_URL     +netboot: default base URL written into the iPXE script
  --IMAGE_REPO      repository the image is published to (KAIROS_IMAGE_REPO):
                    where \`kairos-agent upgrade\` with no source looks for newer releases
  --SECURE_BOOT     auto (default: the distro's signed shim, GRUB and kernel where the flavor
                    has them, so media boot with Secure Boot on), true (refuse a flavor without
                    a signed chain), false (a GRUB built here: Secure Boot must be off)
  --FRONTEND_IMAGE  +frontend: reference of the gateway image (default 127.0.0.1:5000/kairos/frontend:<VERSION>)
  --PUSH            +frontend: true to push it
  --REGISTRY        +release: where the images go, <host>[:port]/<org>
  --RELEASE_FILE    +release: the matrix (release.yaml); default every flavor, both variants, amd64
  --OUTPUT          +release: the media go to <OUTPUT>/release/<VERSION>/ (default build)
  --ARCH            amd64, arm64, or amd64,arm64 (one multi-platform image, media per arch); default
                    this machine's; a foreign arch builds under QEMU emulation (slow: see README)
                    +release: only this arch (FLAVOR, FLAVOR_RELEASE, VARIANT, MODEL narrow too)
  --K3S             +release: a k3s binary for the standard entries (air-gapped)
  --SIGN_KEY        +release: cosign private key signing every image and SHA256SUMS (COSIGN_PASSWORD)
  --BUILDERS        +release: BuildKit daemons, space-separated name=<address>[,platforms=..][,ca=,cert=,key=][,jobs=N]
                    (default \$BUILDKIT_HOST, else the local daemon)
  --CACHE_REPO      +release: repository of the registry build cache (default <REGISTRY>/kairos-cache; off: none)

Names: kairos-<flavor>-<release>-<variant>-<arch>-<model>-<version>.<ext>
EOF
}

# "# +<target>: description" comments above each Earthfile target.
target_help() { sed -n 's/^# +\([a-z][a-z0-9-]*\): \(.*\)$/  +\1\t\2/p' Earthfile | expand -t 14; }

# One line per flavor: "    opensuse: leap-15.6 (default), tumbleweed; aliases opensuse-leap, ...".
flavor_releases() {
	local f
	for f in flavors/*-*.yaml; do
		[ "$f" = flavors/package-managers.yaml ] && continue
		awk '/^name: /{n=$2} /^release: /{r=$2; gsub(/"/, "", r)} /^default: true/{d=" (default)"}
			/^aliases: /{a=$0; sub(/^aliases: \[/, "", a); sub(/\]$/, "", a)} END {print n "\t" r d "\t" a}' "$f"
	done | sort | awk -F'\t' '{ if ($1 != n) { if (n != "") print line (al ? "; aliases " al : ""); n=$1; line="    " $1 ": " $2; al=$3 }
		else { line=line ", " $2; if ($3 != "") al=(al ? al ", " : "") $3 } } END { print line (al ? "; aliases " al : "") }'
}


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
# A flavor's name, or an alias (upstream's names) of one of its releases.
if ! ls "flavors/$FLAVOR"-*.yaml >/dev/null 2>&1 &&
	! grep -qE "^aliases: \[(.*, )?$FLAVOR(, .*)?\]$" flavors/*.yaml; then
	die "unknown flavor '$FLAVOR'; valid (./earthly.sh --help lists the releases):
$(flavor_releases)"
fi
if [ -z "${args[VERSION]:-}" ]; then
	args[VERSION]=$(git describe --tags --always --dirty 2>/dev/null || echo v0.0.0)
	case "${args[VERSION]}" in v*) ;; *) args[VERSION]="v0.0.0-${args[VERSION]}" ;; esac
fi
VERSION=${args[VERSION]}

# --- setup: everything the native path needs -----------------------------------
# qemu-user-static runs arm64 build steps on amd64 (and the reverse; mmdebstrap
# checks that with arch-test);
# qemu-system-arm and qemu-efi-aarch64 (AAVMF) boot arm64 media in the tests;
# cryptsetup-bin makes the LUKS2 headers the tests read, swtpm is the TPM of
# the encrypted nodes booted in QEMU.
APT_PACKAGES=(runc mmdebstrap squashfs-tools xorriso mtools dosfstools e2fsprogs gdisk fdisk
	qemu-system-x86 qemu-utils ovmf ipxe-qemu skopeo umoci ca-certificates docker-registry grub-common
	qemu-user-static arch-test qemu-system-arm qemu-efi-aarch64
	cryptsetup-bin swtpm swtpm-tools)

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
# cached by the exact module versions they link, so only a change that
# reaches them rebuilds.
setup_buildkit() {
	local key
	key=$(go list -deps -f '{{with .Module}}{{.Path}} {{.Version}}{{end}}' \
		github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl | sort -u | sha256sum | cut -c1-16)
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

# Our own binaries: the agent is static, as it runs in every image and
# initrd, and so is the mesh's kairos-p2p beside it; so is kairos-frontend,
# which also writes the artifacts inside BuildKit, in a container holding
# nothing else.
build_tools() {
	local ldflags="-s -w -X github.com/kairos-io/kairos/internal/version.Version=$VERSION"
	mkdir -p "$OUT/bin"
	build_agent "$(go env GOARCH)" ""
	# The agent of every other architecture named in ARCH (an image embeds
	# its own platform's agent).
	local a
	for a in $(foreign_arches); do
		build_agent "$a" "-$a"
	done
	CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/kairos-frontend" ./cmd/kairos-frontend
	go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/kairos" ./cmd/kairos
}

# build_agent <GOARCH> <suffix>: $OUT/bin/kairos-agent<suffix> and the
# mesh's kairos-p2p<suffix> beside it (kairos tells architectures apart by
# their ELF headers and takes kairos-p2p from beside each agent).
build_agent() {
	local ldflags="-s -w -X github.com/kairos-io/kairos/internal/version.Version=$VERSION"
	CGO_ENABLED=0 GOARCH=$1 go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/kairos-agent$2" ./cmd/kairos-agent
	CGO_ENABLED=0 GOARCH=$1 go build -trimpath -ldflags "$ldflags" -o "$OUT/bin/kairos-p2p$2" ./cmd/kairos-p2p
}

# The architectures of --ARCH other than this machine's (a release's
# matrix may hold every architecture: it gets them all).
foreign_arches() {
	local a host list=${args[ARCH]:-}
	[ "$target" = release ] && list=amd64,arm64
	host=$(go env GOARCH)
	for a in ${list//,/ }; do [ "$a" = "$host" ] || echo "$a"; done
}

# --agent for each agent built (kairos tells them apart by their ELF headers).
agent_flags() {
	local a
	echo --agent; echo "$OUT/bin/kairos-agent"
	for a in $(foreign_arches); do echo --agent; echo "$OUT/bin/kairos-agent-$a"; done
}

# The gateway image: static frontend for this machine, agents for every
# platform the frontend builds. $1: directory for kairos-frontend.oci.tar.
frontend_image() {
	local dest=$1
	local ref=${args[FRONTEND_IMAGE]:-127.0.0.1:5000/kairos/frontend:$VERSION}
	build_agent arm64 -arm64
	local push=()
	[ "${args[PUSH]:-}" = true ] && push=(--push)
	SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-0} "$OUT/bin/kairos" frontend-image \
		--frontend "$OUT/bin/kairos-frontend" \
		--agent "linux_$(go env GOARCH)=$OUT/bin/kairos-agent" --agent "linux_arm64=$OUT/bin/kairos-agent-arm64" \
		--tag "$ref" --output "$dest/kairos-frontend.oci.tar" "${push[@]}"
}

# docker buildx for the end-to-end tests (remote driver, no Docker daemon).
# shellcheck source=tests/tools/buildx/setup.sh
source tests/tools/buildx/setup.sh
# cosign (signatures) and syft (SBOMs) for releases and their tests.
# shellcheck source=tools/setup.sh
source tools/setup.sh
setup_cosign() { kairos_setup_tool KAIROS_COSIGN cosign github.com/sigstore/cosign/v2 cmd/cosign "$CACHE"; }
setup_syft() { kairos_setup_tool KAIROS_SYFT syft github.com/anchore/syft cmd/syft "$CACHE"; }

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
	for k in "${!args[@]}"; do
		case "$k" in FRONTEND_IMAGE | PUSH) continue ;; esac
		out+=(--build-arg "$k=${args[$k]}")
	done
	printf '%s\n' "${out[@]}"
}

kairos_build() {
	local bargs aflags
	mapfile -t bargs < <(build_args)
	mapfile -t aflags < <(agent_flags)
	"$OUT/bin/kairos" build --flavor "$FLAVOR" "${aflags[@]}" --output "$OUT" "${bargs[@]}" "$@"
}

# The parsers of untrusted input (image layers, cloud-configs) are fuzzed
# on every test run; a finding fails the run and is saved under the
# package's testdata/fuzz, where plain `go test` replays it.
#
# Each target runs a number of executions (about 20 s here), not a time:
# with a wall-clock -fuzztime, Go 1.26's coordinator can fail a target with a
# bare "context deadline exceeded" when its workers are mid-batch at the
# deadline (go.dev/issue/75804, fixed in Go 1.27) -- it did in CI, with no
# input written. A count has no deadline to race; a real hang still ends in
# go test's own -timeout with the input saved.
FUZZ_TARGETS=(
	"./internal/rootfs FuzzFlatten 12000"
	"./internal/stages FuzzConfig 80000"
	"./frontend FuzzSpec 35000"
	"./internal/diskfmt/squashfs FuzzDeflate 80000"
	"./internal/diskfmt/gpt FuzzRead 500000"
	"./internal/p2p/ledger FuzzDecode 350000"
	"./internal/p2p/token FuzzParse 1000000"
	"./internal/p2p/vpn FuzzAccept 1000000"
	"./internal/agent/crypt FuzzLabel 1500000"
	"./internal/agent/blockdev FuzzProbe 800000"
)
fuzz_untrusted_parsers() {
	local t pkg fn n budget
	for t in "${FUZZ_TARGETS[@]}"; do
		read -r pkg fn n <<<"$t"
		budget=${KAIROS_FUZZTIME:-${n}x}
		log "fuzzing $fn ($pkg): $budget"
		go test -run '^$' -fuzz "^$fn\$" -fuzztime "$budget" -timeout 10m "$pkg"
	done
}

# In CI the private daemon must not outlive the run.
stop_daemon_in_ci() {
	[ "${CI:-}" = true ] || return 0
	local pidfile="$CACHE/buildkit/buildkitd.pid" pid i
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	kill "$pid" 2>/dev/null || return 0
	# A graceful shutdown can hang on open sessions: give it 10 s.
	for i in $(seq 20); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
	kill -9 "$pid" 2>/dev/null || true
}

case "$target" in
image | iso | recovery | netboot | raw | qcow2) setup; kairos_build --target "$target" ;;
all) setup; kairos_build --target image --target all ;;
frontend) setup; frontend_image "$OUT" ;;
release)
	[ -n "${args[REGISTRY]:-}" ] || die "+release needs --REGISTRY=<host>[:port]/<org>"
	setup
	mapfile -t aflags < <(agent_flags)
	rargs=(--registry "${args[REGISTRY]}" --output "${args[OUTPUT]:-$OUT}" --version "$VERSION"
		"${aflags[@]}" --writer "$OUT/bin/kairos-frontend")
	[ -z "${args[RELEASE_FILE]:-}" ] || rargs+=(-f "${args[RELEASE_FILE]}")
	# Only what the user named narrows the matrix (FLAVOR has a default for the other targets).
	for k in FLAVOR FLAVOR_RELEASE VARIANT ARCH MODEL; do
		[ -z "${args[$k]:-}" ] || rargs+=("--$(echo "$k" | tr 'A-Z_' 'a-z-')" "${args[$k]}")
	done
	[ -z "${args[K3S]:-}" ] || rargs+=(--k3s "${args[K3S]}")
	# BUILDERS: BuildKit daemons, space-separated name=<address>[,options] specs.
	for b in ${args[BUILDERS]:-}; do rargs+=(--builder "$b"); done
	[ -z "${args[CACHE_REPO]:-}" ] || rargs+=(--cache-repo "${args[CACHE_REPO]}")
	setup_cosign
	setup_syft
	[ -z "${args[SIGN_KEY]:-}" ] || rargs+=(--sign-key "${args[SIGN_KEY]}")
	"$OUT/bin/kairos" release "${rargs[@]}"
	;;
test | test-all)
	[ "$target" = test-all ] && export KAIROS_E2E_ALL=1
	setup
	command -v docker >/dev/null 2>&1 || die "the docker client is needed by the buildx end-to-end test (Debian: apt-get install docker.io; no daemon is used)"
	kairos_setup_buildx "$CACHE"
	setup_cosign
	setup_syft
	trap stop_daemon_in_ci EXIT
	log "unit tests"
	go vet ./...
	go test -count=1 ./...
	fuzz_untrusted_parsers
	# The end-to-end tests build their own fixtures (tests/e2e/fixtures_test.go):
	# the tools, the Debian image and ISO through BuildKit, the gateway image
	# and the media; then they drive buildctl/buildx and boot QEMU.
	log "end-to-end: building the fixtures, driving the gateway image, booting in QEMU"
	go test -count=1 -tags e2e -timeout 85m -v ./tests/e2e/
	;;
esac
}

# Everything is in main, and the call and the exit are one line that bash
# reads whole before running it: editing this file (or a git checkout)
# during a long build cannot change what the running build does, or make
# bash resume reading the edited file at a stale offset after main returns.
main "$@"; exit $?
