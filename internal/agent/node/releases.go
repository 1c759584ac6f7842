package node

import (
	"os"
	"sort"

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
