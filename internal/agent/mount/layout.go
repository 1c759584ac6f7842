package mount

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// LayoutEnv is upstream's layout file: rootfs-stage steps write it
// (environment_file: /run/cos/cos-layout.env) to change the mount layout
// before it is mounted.
const LayoutEnv = "/run/cos/cos-layout.env"

// Layout is what a node adds to the contract's mount layout.
type Layout struct {
	// PersistentPaths are bind-mounted from COS_PERSISTENT too
	// (PERSISTENT_STATE_PATHS, CUSTOM_BIND_MOUNTS, install.bind_mounts).
	PersistentPaths []string
	// EphemeralPaths get a tmpfs overlay too (RW_PATHS,
	// CUSTOM_EPHEMERAL_MOUNTS, install.ephemeral_mounts).
	EphemeralPaths []string
	// OverlaySize is the tmpfs size (OVERLAY=tmpfs:<size>, or the kernel
	// command line's rd.cos.overlay=tmpfs:<size>); empty is 25%.
	OverlaySize string
}

// overlaySize is a tmpfs size: a percentage of memory, or MiB (a bare
// number, as upstream), or a number with k/m/g.
var overlaySize = regexp.MustCompile(`^[0-9]+(%|[kmgKMG])?$`)

// ReadLayout gathers the layout from the kernel command line, the layout
// env files' contents and the node's configs. What it cannot use is
// reported and left out: a layout mistake must not stop the boot.
func ReadLayout(cmdline string, envFiles [][]byte, cfgs []*cloudconfig.Config) (Layout, []error) {
	var l Layout
	var errs []error
	setSize := func(src, v string) {
		size, ok := strings.CutPrefix(v, "tmpfs:")
		if !ok || !overlaySize.MatchString(size) {
			errs = append(errs, fmt.Errorf("%s: %q: only tmpfs:<size> overlays are supported (size like 25%% or 1024)", src, v))
			return
		}
		if _, err := strconv.Atoi(size); err == nil {
			size += "m"
		}
		l.OverlaySize = size
	}
	addPaths := func(dst *[]string, src string, paths []string) {
		for _, p := range paths {
			clean := path.Clean(p)
			if !path.IsAbs(p) || clean == "/" || clean != p && clean+"/" != p {
				errs = append(errs, fmt.Errorf("%s: %q is not an absolute, clean path", src, p))
				continue
			}
			if !slices.Contains(*dst, clean) {
				*dst = append(*dst, clean)
			}
		}
	}
	for _, f := range strings.Fields(cmdline) {
		for _, key := range []string{"rd.cos.overlay=", "rd.immucore.overlay="} {
			if v, ok := strings.CutPrefix(f, key); ok {
				setSize(strings.TrimSuffix(key, "="), v)
			}
		}
	}
	for _, c := range cfgs {
		addPaths(&l.PersistentPaths, "install.bind_mounts", c.Install.BindMounts)
		addPaths(&l.EphemeralPaths, "install.ephemeral_mounts", c.Install.EphemeralMounts)
	}
	for _, data := range envFiles {
		vars, perrs := parseEnv(data)
		errs = append(errs, perrs...)
		for _, kv := range vars {
			src := LayoutEnv + ": " + kv[0]
			switch kv[0] {
			case "PERSISTENT_STATE_PATHS", "CUSTOM_BIND_MOUNTS":
				addPaths(&l.PersistentPaths, src, strings.Fields(kv[1]))
			case "RW_PATHS", "CUSTOM_EPHEMERAL_MOUNTS":
				addPaths(&l.EphemeralPaths, src, strings.Fields(kv[1]))
			case "OVERLAY":
				setSize(src, kv[1])
			case "PERSISTENT_STATE_BIND":
				if kv[1] != "true" {
					errs = append(errs, fmt.Errorf("%s=%q: persistent paths are always bind mounts here", src, kv[1]))
				}
			default:
				errs = append(errs, fmt.Errorf("%s: not supported by this agent (the contract's volumes and state target are fixed)", src))
			}
		}
	}
	return l, errs
}

// parseEnv reads KEY=VALUE lines (values may be quoted), as a shell
// sourcing the file would for these simple files.
func parseEnv(data []byte) ([][2]string, []error) {
	var out [][2]string
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: not KEY=VALUE", LayoutEnv, n))
			continue
		}
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		out = append(out, [2]string{strings.TrimSpace(k), v})
	}
	return out, errs
}
