package frontend

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/release"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Plan is a build as pure data: everything the LLB conversion needs, derived
// from the options and the flavor data, with no BuildKit in sight.
type Plan struct {
	Target         Target
	Flavor         *flavors.Flavor
	PackageManager flavors.PackageManager
	Packages       []string
	BaseImage      string // registry reference used when no "base" context is given
	Platform       ocispecs.Platform
	Boot           BootPlatform
	// SecureBoot is the signed chain the media boot with; nil: a GRUB
	// image made by the build (Secure Boot off).
	SecureBoot *flavors.SignedChain
	Release    release.Release
	// RemovePackages are removed after installation (spec packages.remove).
	RemovePackages []string
	// CloudConfig is baked into the image at SpecCloudConfigPath (spec
	// cloud_config); nil for none.
	CloudConfig []byte
	// K3s is set for the standard variant.
	K3s *K3sPlan
	// Artifacts says which files the artifact step writes (nil for the
	// image target).
	Artifacts *ArtifactPlan
}

// K3sPlan is where the standard variant's k3s binary comes from when no k3s
// context is given: the upstream GitHub release, checked against the
// release's own sha256 file.
type K3sPlan struct {
	Version string
	// BinaryName is the release asset and the name in the sums file
	// (k3s, k3s-arm64).
	BinaryName string
	BinaryURL  string
	SumsURL    string
}

// k3sReleases is the upstream download location; a var so tests can point
// it at a local server.
var k3sReleases = "https://github.com/k3s-io/k3s/releases/download"

func newK3sPlan(version, arch string) *K3sPlan {
	bin, sums := "k3s", "sha256sum-amd64.txt"
	if arch != "amd64" {
		bin, sums = "k3s-"+arch, "sha256sum-"+arch+".txt"
	}
	// The "+" of k3s tags is escaped: some servers read a raw "+" in a path
	// as a space.
	base := k3sReleases + "/" + strings.ReplaceAll(url.PathEscape(version), "+", "%2B") + "/"
	return &K3sPlan{Version: version, BinaryName: bin, BinaryURL: base + bin, SumsURL: base + sums}
}

// ArtifactPlan lists the artifact kinds one target writes and how.
type ArtifactPlan struct {
	Kinds []string // iso, recovery, netboot, raw, qcow2; in writing order
	// Name is the base name of the files (the release's artifact name
	// unless the spec sets artifacts.iso.name).
	Name string
	// SquashfsCompression is gzip (default: GRUB reads it), xz or zstd.
	SquashfsCompression string
	// DiskSize is the raw/qcow2 disk size in bytes (0 = the writer's
	// default, which fits the image).
	DiskSize int64
	// NetbootURL is the default base URL of the iPXE script ("" = the
	// script asks the operator to set ${base-url}).
	NetbootURL string
}

// artifactKinds maps each artifact target to what it writes.
var artifactKinds = map[Target][]string{
	TargetISO:      {"iso"},
	TargetRecovery: {"recovery"},
	TargetNetboot:  {"netboot"},
	TargetRaw:      {"raw"},
	TargetQcow2:    {"qcow2"},
	TargetAll:      {"iso", "recovery", "netboot", "raw", "qcow2"},
}

// BootPlatform is how one CPU architecture boots: grub's EFI platform, the
// removable-media EFI file name, whether BIOS boot exists at all, and the
// names shim gives the second stage and its key manager (fixed in shim).
type BootPlatform struct {
	GrubEFIPlatform string
	EFIName         string
	BIOS            bool
	ShimGrub        string
	ShimMokManager  string
}

var bootPlatforms = map[string]BootPlatform{
	"amd64": {GrubEFIPlatform: "x86_64-efi", EFIName: "BOOTX64.EFI", BIOS: true, ShimGrub: "grubx64.efi", ShimMokManager: "mmx64.efi"},
	"arm64": {GrubEFIPlatform: "arm64-efi", EFIName: "BOOTAA64.EFI", ShimGrub: "grubaa64.efi", ShimMokManager: "mmaa64.efi"},
}

// NewPlan checks the options against the flavor catalog and fills in every
// default.
func NewPlan(cat *flavors.Catalog, o Options, platform ocispecs.Platform) (*Plan, error) {
	f, err := cat.Lookup(o.Flavor, o.FlavorRelease)
	if err != nil {
		return nil, err
	}
	boot, ok := bootPlatforms[platform.Architecture]
	if !ok {
		return nil, fmt.Errorf("platform %s/%s is not supported (supported architectures: amd64, arm64)", platform.OS, platform.Architecture)
	}
	pkgs, err := f.PackagesFor(platform.Architecture)
	if err != nil {
		return nil, err
	}
	chain, err := secureBootChain(f, o.SecureBoot, platform.Architecture)
	if err != nil {
		return nil, err
	}
	if chain != nil {
		pkgs = append(pkgs, chain.Packages...)
	}
	pkgs = append(pkgs, o.AddPackages...)
	base := f.BaseImage
	if o.BaseImage != "" {
		base = o.BaseImage
	}
	p := &Plan{
		Target:         o.Target,
		Flavor:         f,
		PackageManager: cat.PackageManager(f),
		Packages:       pkgs,
		BaseImage:      base,
		Platform:       platform,
		Boot:           boot,
		SecureBoot:     chain,
		Release: release.Release{
			Version:       o.Version,
			Arch:          platform.Architecture,
			Flavor:        f.Name,
			FlavorRelease: f.Release,
			Family:        f.Family,
			Model:         o.Model,
			Variant:       o.Variant,
			ImageRepo:     o.ImageRepo,
		},
	}
	if o.Variant == "standard" {
		p.K3s = newK3sPlan(o.K3SVersion, platform.Architecture)
		p.Release.SoftwareVersion = o.K3SVersion
		p.Release.SoftwareVersionPrefix = "k3s"
	}
	p.RemovePackages = o.RemovePackages
	p.CloudConfig = o.CloudConfig
	if kinds, ok := artifactKinds[o.Target]; ok {
		p.Artifacts = &ArtifactPlan{Kinds: kinds, SquashfsCompression: "gzip", NetbootURL: o.NetbootURL, DiskSize: o.DiskSize, Name: p.Release.ArtifactName()}
		if o.SquashfsCompression != "" {
			p.Artifacts.SquashfsCompression = o.SquashfsCompression
		}
		if o.ISOName != "" {
			p.Artifacts.Name = o.ISOName
		}
	}
	return p, nil
}

// OverlayTrees names the overlay directories copied over the image, in
// order: the common tree, then the ones chosen by the flavor's init system
// and initrd tool, then the variant's.
func (p *Plan) OverlayTrees() []string {
	trees := p.BootOverlayTrees()
	if p.Release.Variant == "standard" {
		trees = append(trees, "k3s/"+p.Flavor.Init)
	}
	return trees
}

// BootOverlayTrees are the overlay trees the kernel's boot files (initrd,
// grub images) are made with: Kairos' own files without the k3s services,
// so both variants share them.
func (p *Plan) BootOverlayTrees() []string {
	return []string{"rootfs", "init/" + p.Flavor.Init, "initrd/" + p.Flavor.Initrd}
}

// Labels are the OCI labels of the image, the upstream io.kairos.* set.
func (p *Plan) Labels() map[string]string {
	r := p.Release
	return map[string]string{
		"io.kairos.variant":                 r.Variant,
		"io.kairos.family":                  r.Family,
		"io.kairos.flavor":                  r.Flavor,
		"io.kairos.flavor_release":          r.FlavorRelease,
		"io.kairos.model":                   r.Model,
		"io.kairos.release":                 r.Version,
		"io.kairos.version":                 r.Version,
		"io.kairos.software-version":        r.SoftwareVersion,
		"io.kairos.software-version-prefix": r.SoftwareVersionPrefix,
		"io.kairos.targetarch":              r.Arch,
		"org.opencontainers.image.version":  r.Version,
		"org.opencontainers.image.title":    r.Name(),
	}
}

// secureBootChain is the signed chain a build uses: the flavor's for the
// architecture unless turned off; asked for where there is none, an error
// saying which flavors have one.
func secureBootChain(f *flavors.Flavor, want, arch string) (*flavors.SignedChain, error) {
	chain, ok := f.SecureBoot[arch]
	switch {
	case want == SecureBootOff:
		return nil, nil
	case ok:
		return &chain, nil
	case want == SecureBootOn:
		why := "it has no signed boot chain"
		if archs := f.SecureBootArchs(); len(archs) > 0 {
			why = "it has a signed boot chain only for " + strings.Join(archs, ", ")
		}
		return nil, &ArgError{ArgSecureBoot, want, fmt.Sprintf("flavor %s cannot boot %s with Secure Boot: %s (flavors/%s.yaml, secure_boot)", f.ID(), arch, why, f.ID())}
	}
	return nil, nil
}
