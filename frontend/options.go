package frontend

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Build argument names, shared with the Earthfile and earthly.sh.
const (
	ArgBaseImage     = "BASE_IMAGE"
	ArgFlavor        = "FLAVOR"
	ArgFlavorRelease = "FLAVOR_RELEASE"
	ArgVariant       = "VARIANT"
	ArgVersion       = "VERSION"
	ArgModel         = "MODEL"
)

// Target names a build result.
type Target string

// Targets of this frontend. "all" is every artifact in one directory.
const (
	TargetImage Target = "image"
	TargetISO   Target = "iso"
	TargetAll   Target = "all"
)

// TargetInfo describes one target for --help and the targets subrequest.
type TargetInfo struct {
	Name        Target
	Description string
}

// Targets lists the valid targets with a one-line description, in menu order.
var Targets = []TargetInfo{
	{TargetImage, "the Kairos OCI image (default)"},
	{TargetISO, "the live/installer ISO (BIOS + UEFI) and its .sha256"},
	{TargetAll, "every artifact of the image in one directory"},
}

// Variants and their meaning.
var Variants = []string{"core", "standard"}

// Options is what a caller asks of one build, before it is checked against
// the flavor data. Zero values take the defaults.
type Options struct {
	Target        Target
	BaseImage     string
	Flavor        string
	FlavorRelease string
	Variant       string
	Version       string
	Model         string
}

// DefaultVersion is the KAIROS_VERSION of a build that names none.
const DefaultVersion = "v0.0.0"

var versionRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseOptions reads the target and the build args. Unknown build args are
// ignored, as Dockerfile builds ignore them, so one pipeline can pass a
// superset to several frontends.
func ParseOptions(target string, args map[string]string) (Options, error) {
	o := Options{
		Target:        Target(target),
		BaseImage:     args[ArgBaseImage],
		Flavor:        args[ArgFlavor],
		FlavorRelease: args[ArgFlavorRelease],
		Variant:       args[ArgVariant],
		Version:       args[ArgVersion],
		Model:         args[ArgModel],
	}
	if o.Target == "" {
		o.Target = TargetImage
	}
	if o.Variant == "" {
		o.Variant = "core"
	}
	if o.Model == "" {
		o.Model = "generic"
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if !slices.ContainsFunc(Targets, func(t TargetInfo) bool { return t.Name == o.Target }) {
		return o, fmt.Errorf("unknown target %q (valid: %s)", o.Target, strings.Join(TargetNames(), ", "))
	}
	if !slices.Contains(Variants, o.Variant) {
		return o, fmt.Errorf("build arg %s=%q: must be one of %s", ArgVariant, o.Variant, strings.Join(Variants, ", "))
	}
	if o.Variant == "standard" {
		return o, fmt.Errorf("build arg %s=standard: the k3s variant is not available in this build yet; use core", ArgVariant)
	}
	if !versionRe.MatchString(o.Version) {
		return o, fmt.Errorf("build arg %s=%q: must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (it becomes part of file names and image tags)", ArgVersion, o.Version)
	}
	if o.Flavor == "" {
		return o, fmt.Errorf("build arg %s is required (the distro to build from, e.g. debian)", ArgFlavor)
	}
	return o, nil
}

// TargetNames lists the valid target names.
func TargetNames() []string {
	names := make([]string, 0, len(Targets))
	for _, t := range Targets {
		names = append(names, string(t.Name))
	}
	return names
}
