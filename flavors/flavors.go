// Package flavors holds the distro differences as data: one YAML file per
// distro release, and a table of package managers. Code elsewhere reads these
// values and never branches on a flavor's name.
package flavors

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// Flavor describes how to turn one distro release into a Kairos image.
type Flavor struct {
	Name    string `yaml:"name"`
	Release string `yaml:"release"`
	// Default marks the release used when FLAVOR_RELEASE is not given: the
	// newest stable one. A name with several releases has exactly one.
	Default bool `yaml:"default"`
	// Aliases are other names that select this release, as upstream
	// Kairos names its flavors (opensuse-leap, rockylinux).
	Aliases        []string `yaml:"aliases"`
	Family         string   `yaml:"family"`
	BaseImage      string   `yaml:"base_image"`
	PackageManager string   `yaml:"package_manager"`
	Init           string   `yaml:"init"`
	Initrd         string   `yaml:"initrd"`
	// OSRelease recognises the release from its /etc/os-release (Detect).
	OSRelease OSRelease  `yaml:"os_release"`
	Bootstrap *Bootstrap `yaml:"bootstrap"`
	// PreInstall are shell commands run inside the image before its packages
	// are installed, to enable the repositories some packages come from. They
	// run in order, in the same shell step as the install and ahead of it
	// (joined with " && ", so the first failure fails the step), with the
	// package manager's environment and cache mounts. What they change stays
	// in the image.
	PreInstall []string `yaml:"pre_install"`
	// InitrdModules are extra initrd-tool modules (dracut --add), e.g. the
	// network stack the distro's dracut should use for netboot.
	InitrdModules []string `yaml:"initrd_modules"`
	// Kernel is the kernel package for each architecture; PackagesFor adds it.
	// It is apart from the other packages so that no flavor can lack one.
	Kernel       map[string]string   `yaml:"kernel"`
	Packages     []string            `yaml:"packages"`
	ArchPackages map[string][]string `yaml:"arch_packages"`
	Grub         Grub                `yaml:"grub"`
	// SecureBoot is the distro's signed boot chain for each architecture
	// that has one. Media and disks of those boot with Secure Boot
	// enforcing; a build asked for Secure Boot elsewhere is refused.
	SecureBoot map[string]SignedChain `yaml:"secure_boot"`
}

// SignedChain is a distro's Secure Boot chain for one architecture: shim
// signed by the third-party CA firmware trusts, the distro's GRUB signed
// by the distro's key (which shim embeds), and the distro's kernel, signed
// with the same key (the kernel package needs no entry here). Paths are
// where the packages install the signed binaries.
type SignedChain struct {
	Packages []string `yaml:"packages"`
	// Shim becomes the removable-media loader (EFI/BOOT/BOOTX64.EFI).
	Shim string `yaml:"shim"`
	// Grub is the signed GRUB, which shim loads from beside itself.
	Grub string `yaml:"grub"`
	// MokManager is shim's key manager, loaded when a key enrolment waits.
	MokManager string `yaml:"mok_manager"`
	// GrubPrefix is the ESP directory built into the signed GRUB, where it
	// looks for its config first (/EFI/debian): signed GRUBs embed it and
	// cannot be given another.
	GrubPrefix string `yaml:"grub_prefix"`
}

// OSRelease is what /etc/os-release says on the distro release a flavor is
// built from.
type OSRelease struct {
	// ID is os-release's ID ("debian", "opensuse-leap").
	ID string `yaml:"id"`
	// VersionID matches os-release's VERSION_ID when it is equal or is its
	// prefix up to a dot: "3.20" matches 3.20.3, "9" matches 9.4. Empty
	// matches any version: rolling releases stamp VERSION_ID with a date.
	VersionID string `yaml:"version_id"`
}

// Bootstrap says how to make the base rootfs from the distro's own mirror,
// for machines that reach no container registry.
type Bootstrap struct {
	Tool    string   `yaml:"tool"`
	Suite   string   `yaml:"suite"`
	Variant string   `yaml:"variant"`
	Mirror  string   `yaml:"mirror"`
	Include []string `yaml:"include"`
}

// Grub names the distro's grub tools and module directories.
type Grub struct {
	Mkimage string `yaml:"mkimage"`
	Lib     string `yaml:"lib"`
}

// PackageManager holds the shell fragments one package manager needs.
type PackageManager struct {
	Env       map[string]string `yaml:"env"`
	Install   string            `yaml:"install"`
	Remove    string            `yaml:"remove"`
	Clean     string            `yaml:"clean"`
	CacheDirs []string          `yaml:"cache_dirs"`
}

const packageManagersFile = "package-managers.yaml"

// ID is the flavor's file name without extension: "<name>-<release>".
func (f *Flavor) ID() string { return f.Name + "-" + f.Release }

// PackagesFor returns the packages to install for a target architecture:
// the common ones, the kernel, then the architecture's own.
func (f *Flavor) PackagesFor(arch string) ([]string, error) {
	extra, ok := f.ArchPackages[arch]
	kernel := f.Kernel[arch]
	if !ok || kernel == "" {
		return nil, fmt.Errorf("flavor %s does not support architecture %q (supported: %s)",
			f.ID(), arch, strings.Join(sortedKeys(f.ArchPackages), ", "))
	}
	pkgs := append(slices.Clone(f.Packages), kernel)
	return append(pkgs, extra...), nil
}

// requiredArchs are the architectures every flavor builds for: the ones the
// frontend knows how to boot.
var requiredArchs = []string{"amd64", "arm64"}

// osReleaseID is the character set os-release(5) allows in ID.
var osReleaseID = regexp.MustCompile(`^[a-z0-9._-]+$`)

func (f *Flavor) validate(managers map[string]PackageManager) error {
	var missing []string
	for field, v := range map[string]string{
		"name": f.Name, "release": f.Release, "family": f.Family,
		"base_image": f.BaseImage, "package_manager": f.PackageManager,
		"init": f.Init, "initrd": f.Initrd, "grub.mkimage": f.Grub.Mkimage, "grub.lib": f.Grub.Lib,
		"os_release.id": f.OSRelease.ID,
	} {
		if v == "" {
			missing = append(missing, field)
		}
	}
	if len(f.Kernel) == 0 {
		missing = append(missing, "kernel")
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing keys: %s", strings.Join(missing, ", "))
	}
	if _, ok := managers[f.PackageManager]; !ok {
		return fmt.Errorf("package_manager %q is not one of %s", f.PackageManager, strings.Join(sortedKeys(managers), ", "))
	}
	if !slices.Contains([]string{"systemd", "openrc"}, f.Init) {
		return fmt.Errorf("init %q is not one of systemd, openrc", f.Init)
	}
	if !slices.Contains([]string{"dracut", "mkinitfs"}, f.Initrd) {
		return fmt.Errorf("initrd %q is not one of dracut, mkinitfs", f.Initrd)
	}
	if !osReleaseID.MatchString(f.OSRelease.ID) {
		return fmt.Errorf("os_release.id %q is not an os-release ID (lowercase a-z, 0-9, \".\", \"_\", \"-\")", f.OSRelease.ID)
	}
	for _, arch := range requiredArchs {
		if _, ok := f.ArchPackages[arch]; !ok {
			return fmt.Errorf("arch_packages lacks %s: every flavor builds for %s", arch, strings.Join(requiredArchs, " and "))
		}
	}
	for _, arch := range sortedKeys(f.ArchPackages) {
		if f.Kernel[arch] == "" {
			return fmt.Errorf("kernel names no package for %s (every architecture in arch_packages needs one)", arch)
		}
	}
	for _, arch := range sortedKeys(f.Kernel) {
		if _, ok := f.ArchPackages[arch]; !ok {
			return fmt.Errorf("kernel lists %s, which arch_packages does not", arch)
		}
	}
	for _, arch := range sortedKeys(f.SecureBoot) {
		if err := f.SecureBoot[arch].validate(); err != nil {
			return fmt.Errorf("secure_boot.%s: %w", arch, err)
		}
		if _, ok := f.ArchPackages[arch]; !ok {
			return fmt.Errorf("secure_boot lists %s, which arch_packages does not", arch)
		}
	}
	lists := map[string][]string{"packages": f.Packages, "pre_install": f.PreInstall}
	for arch, pkgs := range f.ArchPackages {
		lists["arch_packages."+arch] = pkgs
	}
	for _, name := range sortedKeys(lists) {
		if slices.Contains(lists[name], "") {
			return fmt.Errorf("%s has an empty entry", name)
		}
	}
	return nil
}

// signedPath is where a signed binary or the GRUB prefix may be: absolute,
// clean, no spaces or shell characters (boot.sh gets them in variables).
var signedPath = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)

func (c SignedChain) validate() error {
	if len(c.Packages) == 0 || slices.Contains(c.Packages, "") {
		return fmt.Errorf("packages must name the packages holding the signed binaries")
	}
	for _, kv := range [][2]string{{"shim", c.Shim}, {"grub", c.Grub}, {"mok_manager", c.MokManager}, {"grub_prefix", c.GrubPrefix}} {
		if !signedPath.MatchString(kv[1]) || path.Clean(kv[1]) != kv[1] {
			return fmt.Errorf("%s %q: want an absolute, clean path of letters, digits, '.', '_', '+', '-'", kv[0], kv[1])
		}
	}
	if !strings.HasPrefix(c.GrubPrefix, "/EFI/") {
		return fmt.Errorf("grub_prefix %q: want the ESP directory signed GRUB reads, /EFI/<vendor>", c.GrubPrefix)
	}
	return nil
}

// SecureBootArchs are the architectures with a signed chain, sorted.
func (f *Flavor) SecureBootArchs() []string { return sortedKeys(f.SecureBoot) }

// Catalog is every flavor and package manager known to this build.
type Catalog struct {
	flavors  map[string]*Flavor
	managers map[string]PackageManager
}

// Load reads and validates the embedded flavor files.
func Load() (*Catalog, error) { return LoadFS(files) }

// LoadFS reads and validates flavor files from fsys (tests use it for bad input).
func LoadFS(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{flavors: map[string]*Flavor{}}
	if err := decodeStrict(fsys, packageManagersFile, &c.managers); err != nil {
		return nil, err
	}
	names, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		if name == packageManagersFile {
			continue
		}
		f := &Flavor{}
		if err := decodeStrict(fsys, name, f); err != nil {
			return nil, err
		}
		if err := f.validate(c.managers); err != nil {
			return nil, fmt.Errorf("flavors/%s: %w", name, err)
		}
		if want := strings.TrimSuffix(path.Base(name), ".yaml"); f.ID() != want {
			return nil, fmt.Errorf("flavors/%s: name and release say %q; the file must be named %s.yaml", name, f.ID(), f.ID())
		}
		c.flavors[f.ID()] = f
	}
	if err := c.checkOSReleases(); err != nil {
		return nil, err
	}
	if err := c.checkDefaultsAndAliases(); err != nil {
		return nil, err
	}
	return c, nil
}

// flavorName is what a flavor name or alias may be.
var flavorName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// checkDefaultsAndAliases: every name with several releases has one
// default; an alias names one release, and no flavor or other alias.
func (c *Catalog) checkDefaultsAndAliases() error {
	defaults := map[string][]string{}
	releases := map[string]int{}
	for _, id := range c.IDs() {
		f := c.flavors[id]
		releases[f.Name]++
		if f.Default {
			defaults[f.Name] = append(defaults[f.Name], f.Release)
		}
	}
	for _, name := range sortedKeys(releases) {
		if d := defaults[name]; len(d) > 1 || releases[name] > 1 && len(d) == 0 {
			return fmt.Errorf("flavors: %s has %d releases and %d marked default: %v (want exactly one default: true)", name, releases[name], len(d), d)
		}
	}
	seen := map[string]string{}
	for _, id := range c.IDs() {
		for _, a := range c.flavors[id].Aliases {
			switch {
			case !flavorName.MatchString(a):
				return fmt.Errorf("flavors/%s.yaml: alias %q: lowercase letters, digits, '.', '_', '-'", id, a)
			case releases[a] > 0:
				return fmt.Errorf("flavors/%s.yaml: alias %q is the name of a flavor", id, a)
			case seen[a] != "":
				return fmt.Errorf("flavors/%s.yaml: alias %q is also one of %s", id, a, seen[a])
			}
			seen[a] = id
		}
	}
	return nil
}

func decodeStrict(fsys fs.FS, name string, v any) error {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return fmt.Errorf("reading flavors/%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("flavors/%s: %w", name, err)
	}
	return nil
}

// Lookup finds a flavor by name (or an alias) and, optionally, release.
// With no release a name gives its default release.
func (c *Catalog) Lookup(name, release string) (*Flavor, error) {
	for _, id := range c.IDs() {
		f := c.flavors[id]
		if slices.Contains(f.Aliases, name) {
			if release != "" && release != f.Release {
				return nil, fmt.Errorf("flavor %q is %s release %s; FLAVOR_RELEASE=%q asks for another (use FLAVOR=%s)", name, f.Name, f.Release, release, f.Name)
			}
			return f, nil
		}
	}
	if release != "" {
		if f, ok := c.flavors[name+"-"+release]; ok {
			return f, nil
		}
		return nil, fmt.Errorf("unknown flavor %s release %q (valid: %s)", name, release, strings.Join(c.IDs(), ", "))
	}
	var found []*Flavor
	for _, id := range c.IDs() {
		if f := c.flavors[id]; f.Name == name {
			found = append(found, f)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("unknown flavor %q (valid: %s)", name, strings.Join(c.Names(), ", "))
	case len(found) == 1:
		return found[0], nil
	}
	for _, f := range found {
		if f.Default {
			return f, nil
		}
	}
	// LoadFS refuses a catalog without a default: unreachable for Load.
	return nil, fmt.Errorf("flavor %q has several releases and none is the default: choose one with FLAVOR_RELEASE", name)
}

// Releases describes each flavor name with its releases, the default
// marked, and its aliases: "opensuse: leap-15.6 (default), tumbleweed;
// aliases opensuse-leap, opensuse-tumbleweed", for --help and errors.
func (c *Catalog) Releases() []string {
	var out []string
	for _, name := range c.Names() {
		var rels, aliases []string
		for _, id := range c.IDs() {
			f := c.flavors[id]
			if f.Name != name {
				continue
			}
			r := f.Release
			if f.Default {
				r += " (default)"
			}
			rels = append(rels, r)
			aliases = append(aliases, f.Aliases...)
		}
		line := name + ": " + strings.Join(rels, ", ")
		if len(aliases) > 0 {
			line += "; aliases " + strings.Join(aliases, ", ")
		}
		out = append(out, line)
	}
	return out
}

// PackageManager returns the commands of a flavor's package manager.
func (c *Catalog) PackageManager(f *Flavor) PackageManager { return c.managers[f.PackageManager] }

// Flavors lists every flavor, sorted by ID.
func (c *Catalog) Flavors() []*Flavor {
	out := make([]*Flavor, 0, len(c.flavors))
	for _, id := range c.IDs() {
		out = append(out, c.flavors[id])
	}
	return out
}

// IDs lists every "<name>-<release>", sorted.
func (c *Catalog) IDs() []string { return sortedKeys(c.flavors) }

// Names lists the distinct flavor names, sorted.
func (c *Catalog) Names() []string {
	seen := map[string]bool{}
	for _, f := range c.flavors {
		seen[f.Name] = true
	}
	return sortedKeys(seen)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
