package node

import (
	"os"
	"sort"
	"strings"

	"golang.org/x/mod/semver"

	"github.com/kairos-io/kairos/internal/release"
)

// NewerReleases are the semantic-version tags newer than current (all
// version tags when all is set or current is not a version), newest first.
func NewerReleases(tags []string, current string, all bool) []string {
	var out []string
	for _, t := range tags {
		if !semver.IsValid(t) {
			continue
		}
		if !all && semver.IsValid(current) && semver.Compare(t, current) <= 0 {
			continue
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return semver.Compare(out[i], out[j]) > 0 })
	return out
}

// RunningVersion is KAIROS_VERSION of the release file at path, "" when
// the file is missing or unreadable: list-releases then lists every
// version rather than failing.
func RunningVersion(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	rel, err := release.Parse(data)
	if err != nil {
		return ""
	}
	return rel["KAIROS_VERSION"]
}

// NewestImage picks, among a repository's tags, the newest release of the
// running image's own line: tags named as KAIROS_IMAGE_LABEL is
// (<flavor_release>-<variant>-<arch>-<model>-<version>[-<prefix><software
// version>]) whose version is a semantic version newer than the running
// one. It gives "" when none is newer.
func NewestImage(rel map[string]string, tags []string) string {
	line := rel["KAIROS_FLAVOR_RELEASE"] + "-" + rel["KAIROS_VARIANT"] + "-" + rel["KAIROS_TARGETARCH"] + "-" + rel["KAIROS_MODEL"] + "-"
	current := rel["KAIROS_VERSION"]
	best, bestVersion := "", ""
	for _, t := range tags {
		v, ok := strings.CutPrefix(t, line)
		if !ok {
			continue
		}
		if p := rel["KAIROS_SOFTWARE_VERSION_PREFIX"]; p != "" {
			var soft string
			if v, soft, ok = strings.Cut(v, "-"+p); !ok || soft == "" {
				continue // a core image's tag in a standard line, or the reverse
			}
		} else if strings.Contains(v, "-k3s") {
			continue
		}
		if !semver.IsValid(v) || (semver.IsValid(current) && semver.Compare(v, current) <= 0) {
			continue
		}
		if best == "" || semver.Compare(v, bestVersion) > 0 || (semver.Compare(v, bestVersion) == 0 && t > best) {
			best, bestVersion = t, v
		}
	}
	return best
}
