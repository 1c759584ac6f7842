// Package release reads and writes /etc/kairos-release, the os-release style
// file that names what a Kairos image is. The build writes it; the agent reads
// it to report state and to compare versions on upgrade.
package release

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Path is where every Kairos image carries the file.
const Path = "/etc/kairos-release"

// Release is the identity of one image.
type Release struct {
	Version               string // KAIROS_VERSION, e.g. v1.0.0
	Arch                  string // amd64, arm64
	Flavor                string // debian
	FlavorRelease         string // bookworm
	Family                string // debian
	Model                 string // generic, rpi4
	Variant               string // core, standard
	SoftwareVersion       string // v1.31.2+k3s1, empty for core
	SoftwareVersionPrefix string // k3s, empty for core
	// ImageRepo is the repository the image is published to, where the
	// agent looks for newer releases ("" when the build names none).
	ImageRepo string
}

// Name is the image's short name: kairos-<variant>-<flavor>-<flavor_release>.
func (r Release) Name() string {
	return fmt.Sprintf("kairos-%s-%s-%s", r.Variant, r.Flavor, r.FlavorRelease)
}

// ArtifactName is the base name every artifact of this image carries:
// kairos-<flavor>-<flavor_release>-<variant>-<arch>-<model>-<version>[-<prefix><software version>],
// e.g. kairos-debian-bookworm-standard-amd64-generic-v1.0.0-k3sv1.31.2+k3s1.
func (r Release) ArtifactName() string {
	n := fmt.Sprintf("kairos-%s-%s-%s-%s-%s-%s", r.Flavor, r.FlavorRelease, r.Variant, r.Arch, r.Model, r.Version)
	if r.SoftwareVersion != "" {
		n += "-" + r.SoftwareVersionPrefix + r.SoftwareVersion
	}
	return n
}

// IndexArtifactName is ArtifactName without the arch: the name of a
// multi-platform image index holding the arches of one release.
func (r Release) IndexArtifactName() string {
	n := fmt.Sprintf("kairos-%s-%s-%s-%s-%s", r.Flavor, r.FlavorRelease, r.Variant, r.Model, r.Version)
	if r.SoftwareVersion != "" {
		n += "-" + r.SoftwareVersionPrefix + r.SoftwareVersion
	}
	return n
}

// ImageTag is the OCI tag of the image:
// <flavor_release>-<variant>-<arch>-<model>-<version>[-<prefix><software version>].
// "+" is not allowed in tags; upstream writes it as "-".
func (r Release) ImageTag() string { return r.tag(true) }

func (r Release) tag(arch bool) string {
	parts := []string{r.FlavorRelease, r.Variant, r.Arch, r.Model, r.Version}
	if !arch {
		parts = append(parts[:2], parts[3:]...)
	}
	t := strings.Join(parts, "-")
	if r.SoftwareVersion != "" {
		t += "-" + r.SoftwareVersionPrefix + strings.ReplaceAll(r.SoftwareVersion, "+", "-")
	}
	return t
}

// IndexTag is ImageTag without the arch: the tag of the image index
// that holds the arches of one release image.
func (r Release) IndexTag() string { return r.tag(false) }

// Fields returns the file's key/value pairs in file order.
func (r Release) Fields() [][2]string {
	return [][2]string{
		{"KAIROS_ID", "kairos"},
		{"KAIROS_ID_LIKE", "kairos-" + r.Variant + "-" + r.Flavor},
		{"KAIROS_NAME", r.Name()},
		{"KAIROS_PRETTY_NAME", r.Name() + " " + r.Version},
		{"KAIROS_VERSION", r.Version},
		{"KAIROS_VERSION_ID", r.Version},
		{"KAIROS_RELEASE", r.Version},
		{"KAIROS_ARCH", r.Arch},
		{"KAIROS_TARGETARCH", r.Arch},
		{"KAIROS_FLAVOR", r.Flavor},
		{"KAIROS_FLAVOR_RELEASE", r.FlavorRelease},
		{"KAIROS_FAMILY", r.Family},
		{"KAIROS_MODEL", r.Model},
		{"KAIROS_VARIANT", r.Variant},
		{"KAIROS_SOFTWARE_VERSION", r.SoftwareVersion},
		{"KAIROS_SOFTWARE_VERSION_PREFIX", r.SoftwareVersionPrefix},
		{"KAIROS_ARTIFACT", r.ArtifactName()},
		{"KAIROS_IMAGE_REPO", r.ImageRepo},
		{"KAIROS_IMAGE_LABEL", r.ImageTag()},
	}
}

// Render writes the file content, values double-quoted as in os-release.
func (r Release) Render() []byte {
	var b bytes.Buffer
	for _, kv := range r.Fields() {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], strconv.Quote(kv[1]))
	}
	return b.Bytes()
}

// Parse reads os-release style content into a map. Unquoted, single- and
// double-quoted values are accepted; comments and blank lines are skipped.
func Parse(data []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want KEY=value, got %q", n, line)
		}
		switch {
		case strings.HasPrefix(v, `"`):
			uq, err := strconv.Unquote(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad quoting in %q: %w", n, line, err)
			}
			v = uq
		case strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) >= 2:
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out, sc.Err()
}
