package frontend

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/kairos-io/kairos/internal/release"
)

// Build argument names, shared with the Earthfile and earthly.sh.
const (
	ArgBaseImage     = "BASE_IMAGE"
	ArgFlavor        = "FLAVOR"
	ArgFlavorRelease = "FLAVOR_RELEASE"
	ArgVariant       = "VARIANT"
	ArgVersion       = "VERSION"
	ArgModel         = "MODEL"
	ArgK3SVersion    = "K3S_VERSION"
	// ArgNetbootURL is the default base URL written into the iPXE script;
	// the script's ${base-url} setting overrides it at boot.
	ArgNetbootURL = "NETBOOT_URL"
	// ArgImageRepo is the repository the image is published to
	// (KAIROS_IMAGE_REPO): `kairos-agent upgrade` with no source takes the
	// newest release of this image there.
	ArgImageRepo = "IMAGE_REPO"
	// ArgSecureBoot chooses the boot chain: auto (the distro's signed
	// chain where the flavor data has one), true (the signed chain, or
	// refuse the build), false (a GRUB image made by the build, which
	// boots only with Secure Boot off).
	ArgSecureBoot = "SECURE_BOOT"
)

// SecureBoot values.
const (
	SecureBootAuto = "auto"
	SecureBootOn   = "true"
	SecureBootOff  = "false"
)

// Args lists the build args this frontend reads, with their meaning, for
// --help and the outline subrequest.
var Args = []ArgInfo{
	{ArgFlavor, "", "distro flavor (debian, ubuntu, opensuse, alpine, fedora, rocky); detected from the base image when empty"},
	{ArgFlavorRelease, "", "flavor release, when the flavor has several (e.g. 24.04, leap-15.6)"},
	{ArgBaseImage, "", "base image reference instead of the flavor's"},
	{ArgVariant, "core", "core (no Kubernetes) or standard (with k3s)"},
	{ArgVersion, DefaultVersion, "KAIROS_VERSION of the image"},
	{ArgModel, "generic", "hardware model"},
	{ArgK3SVersion, DefaultK3SVersion, "k3s release for the standard variant"},
	{ArgNetbootURL, "", "default base URL in the netboot iPXE script"},
	{ArgSecureBoot, SecureBootAuto, "boot chain: auto (the distro's signed shim, GRUB and kernel where the flavor has them), true (the signed chain or refuse the build), false (unsigned GRUB: boots only with Secure Boot off)"},
	{ArgImageRepo, "", "repository the image is published to (KAIROS_IMAGE_REPO, e.g. registry.example.com/kairos/debian): what `kairos-agent upgrade` with no source looks in"},
}

// ArgInfo describes one build arg.
type ArgInfo struct {
	Name        string
	Default     string
	Description string
}

// DefaultK3SVersion is the k3s release of a standard build that names none.
const DefaultK3SVersion = "v1.31.2+k3s1"

// Target names a build result.
type Target string

// Targets of this frontend. "all" is every artifact in one directory.
const (
	TargetImage    Target = "image"
	TargetISO      Target = "iso"
	TargetRecovery Target = "recovery"
	TargetNetboot  Target = "netboot"
	TargetRaw      Target = "raw"
	TargetQcow2    Target = "qcow2"
	TargetAll      Target = "all"
)

// TargetInfo describes one target for --help and the targets subrequest.
type TargetInfo struct {
	Name        Target
	Description string
}

// Targets lists the valid targets with a one-line description, in menu order.
var Targets = []TargetInfo{
	{TargetImage, "the Kairos OCI image (default)"},
	{TargetISO, "the live/installer ISO (BIOS + UEFI, CD + USB)"},
	{TargetRecovery, "the root file system as a squashfs (recovery image)"},
	{TargetNetboot, "kernel, initrd, squashfs and iPXE script for network boot"},
	{TargetRaw, "installed-system disk image (GPT, EFI + A/B state + recovery), raw"},
	{TargetQcow2, "the same disk image as qcow2 (sparse)"},
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
	K3SVersion    string // standard variant only
	NetbootURL    string
	ImageRepo     string // KAIROS_IMAGE_REPO
	SecureBoot    string // SecureBootAuto, SecureBootOn or SecureBootOff

	// From the spec file only.
	AddPackages         []string
	RemovePackages      []string
	SquashfsCompression string
	ISOName             string
	DiskSize            int64
	CloudConfig         []byte
}

// ArgError is a bad build arg value. The build glue reports it at the
// spec's line when the value came from the spec file.
type ArgError struct {
	Arg   string
	Value string
	Msg   string
}

func (e *ArgError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("build arg %s %s", e.Arg, e.Msg)
	}
	return fmt.Sprintf("build arg %s=%q: %s", e.Arg, e.Value, e.Msg)
}

// DefaultVersion is the KAIROS_VERSION of a build that names none.
const DefaultVersion = "v0.0.0"

var (
	versionRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	k3sVersionRe = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-rc[0-9]+)?\+k3s[0-9]+$`)
)

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
		K3SVersion:    args[ArgK3SVersion],
		NetbootURL:    args[ArgNetbootURL],
		ImageRepo:     args[ArgImageRepo],
		SecureBoot:    args[ArgSecureBoot],
	}
	if o.SecureBoot == "" {
		o.SecureBoot = SecureBootAuto
	}
	if !slices.Contains([]string{SecureBootAuto, SecureBootOn, SecureBootOff}, o.SecureBoot) {
		return o, &ArgError{ArgSecureBoot, o.SecureBoot, "must be auto, true or false"}
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
		return o, errors.New(unknownTargetError(o.Target))
	}
	if !slices.Contains(Variants, o.Variant) {
		return o, &ArgError{ArgVariant, o.Variant, "must be one of " + strings.Join(Variants, ", ")}
	}
	switch {
	case o.Variant == "standard" && o.K3SVersion == "":
		o.K3SVersion = DefaultK3SVersion
	case o.Variant != "standard" && o.K3SVersion != "":
		return o, &ArgError{ArgK3SVersion, o.K3SVersion, fmt.Sprintf("is only used by the standard variant (%s is %s)", ArgVariant, o.Variant)}
	}
	if o.K3SVersion != "" && !k3sVersionRe.MatchString(o.K3SVersion) {
		return o, &ArgError{ArgK3SVersion, o.K3SVersion, "want a k3s release tag such as " + DefaultK3SVersion}
	}
	if err := release.CheckName(o.Model); err != nil {
		return o, &ArgError{ArgModel, o.Model, err.Error()}
	}
	if o.NetbootURL != "" {
		if err := release.CheckURL(o.NetbootURL); err != nil {
			return o, &ArgError{ArgNetbootURL, o.NetbootURL, err.Error()}
		}
	}
	if o.ImageRepo != "" {
		if err := release.CheckRepository(o.ImageRepo); err != nil {
			return o, &ArgError{ArgImageRepo, o.ImageRepo, err.Error()}
		}
	}
	if !versionRe.MatchString(o.Version) {
		return o, &ArgError{ArgVersion, o.Version, "must start with a letter or digit and hold only letters, digits, '.', '_' and '-' (it becomes part of file names and image tags)"}
	}
	return o, nil
}

func unknownTargetError(t Target) string {
	return fmt.Sprintf("unknown target %q (valid: %s)", t, strings.Join(TargetNames(), ", "))
}

// TargetNames lists the valid target names.
func TargetNames() []string {
	names := make([]string, 0, len(Targets))
	for _, t := range Targets {
		names = append(names, string(t.Name))
	}
	return names
}
