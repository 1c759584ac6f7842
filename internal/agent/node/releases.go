package node

import (
	"fmt"
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
	rel, _ := RunningRelease(path)
	return rel["KAIROS_VERSION"]
}

// RunningRelease is the release file at path (/etc/kairos-release).
func RunningRelease(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rel, err := release.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rel, nil
}

// NewestImage picks, among a repository's tags, the newest release of the
// running image's own line: tags named as KAIROS_IMAGE_LABEL is
// (<flavor_release>-<variant>-<arch>-<model>-<version>[-<prefix><software
// version>]) whose version is a semantic version newer than the running
// one. As upstream, pre-releases are skipped (unless the node runs one),
// and a standard image stays on its Kubernetes minor version (the newest
// patch of it wins a tie). It gives "" when none is newer.
func NewestImage(rel map[string]string, tags []string) string {
	line := rel["KAIROS_FLAVOR_RELEASE"] + "-" + rel["KAIROS_VARIANT"] + "-" + rel["KAIROS_TARGETARCH"] + "-" + rel["KAIROS_MODEL"] + "-"
	current := rel["KAIROS_VERSION"]
	pre := semver.Prerelease(current) != ""
	prefix := rel["KAIROS_SOFTWARE_VERSION_PREFIX"]
	softLine := semver.MajorMinor(strings.ReplaceAll(rel["KAIROS_SOFTWARE_VERSION"], "+", "-"))
	best, bestVersion, bestSoft := "", "", ""
	for _, t := range tags {
		v, ok := strings.CutPrefix(t, line)
		if !ok {
			continue
		}
		var soft string
		if prefix != "" {
			if v, soft, ok = strings.Cut(v, "-"+prefix); !ok || !semver.IsValid(soft) {
				continue // a core image's tag in a standard line
			}
			if softLine != "" && semver.MajorMinor(soft) != softLine {
				continue // another Kubernetes minor: not an OS upgrade
			}
		} else if strings.Contains(v, "-k3s") {
			continue
		}
		if !semver.IsValid(v) || (semver.Prerelease(v) != "" && !pre) {
			continue
		}
		if semver.IsValid(current) && semver.Compare(v, current) <= 0 {
			continue
		}
		if c := semver.Compare(v, bestVersion); best == "" || c > 0 || (c == 0 && semver.Compare(soft, bestSoft) > 0) {
			best, bestVersion, bestSoft = t, v, soft
		}
	}
	return best
}
