// Package flavors holds the distro differences as data: one YAML file per
// distro release, and a table of package managers. Code elsewhere reads these
// values and never branches on a flavor's name.
package flavors

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed *.yaml
var files embed.FS

// Flavor describes how to turn one distro release into a Kairos image.
type Flavor struct {
	Name           string              `yaml:"name"`
	Release        string              `yaml:"release"`
	Family         string              `yaml:"family"`
	BaseImage      string              `yaml:"base_image"`
	PackageManager string              `yaml:"package_manager"`
	Init           string              `yaml:"init"`
	Initrd         string              `yaml:"initrd"`
	Bootstrap      *Bootstrap          `yaml:"bootstrap"`
	Packages       []string            `yaml:"packages"`
	ArchPackages   map[string][]string `yaml:"arch_packages"`
	Grub           Grub                `yaml:"grub"`
	// ISOTools are installed on top of the image, in a throwaway layer, to
	// assemble live media.
	ISOTools []string `yaml:"iso_tools"`
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

// PackagesFor returns the packages to install for a target architecture.
func (f *Flavor) PackagesFor(arch string) ([]string, error) {
	extra, ok := f.ArchPackages[arch]
	if !ok {
		return nil, fmt.Errorf("flavor %s does not support architecture %q (supported: %s)",
			f.ID(), arch, strings.Join(sortedKeys(f.ArchPackages), ", "))
	}
	return append(slices.Clone(f.Packages), extra...), nil
}

func (f *Flavor) validate(managers map[string]PackageManager) error {
	var missing []string
	for field, v := range map[string]string{
		"name": f.Name, "release": f.Release, "family": f.Family,
		"base_image": f.BaseImage, "package_manager": f.PackageManager,
		"init": f.Init, "initrd": f.Initrd, "grub.mkimage": f.Grub.Mkimage, "grub.lib": f.Grub.Lib,
	} {
		if v == "" {
			missing = append(missing, field)
		}
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
	if len(f.ArchPackages) == 0 {
		return errors.New("arch_packages lists no architecture")
	}
	return nil
}

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
	return c, nil
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

// Lookup finds a flavor by name and, optionally, release. With an empty
// release the name must identify exactly one flavor.
func (c *Catalog) Lookup(name, release string) (*Flavor, error) {
	if release != "" {
		if f, ok := c.flavors[name+"-"+release]; ok {
			return f, nil
		}
		return nil, fmt.Errorf("unknown flavor %s release %q (valid: %s)", name, release, strings.Join(c.IDs(), ", "))
	}
	var found []*Flavor
	for _, f := range c.flavors {
		if f.Name == name {
			found = append(found, f)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, fmt.Errorf("unknown flavor %q (valid: %s)", name, strings.Join(c.Names(), ", "))
	default:
		ids := make([]string, 0, len(found))
		for _, f := range found {
			ids = append(ids, f.Release)
		}
		sort.Strings(ids)
		return nil, fmt.Errorf("flavor %q has several releases, choose one with FLAVOR_RELEASE: %s", name, strings.Join(ids, ", "))
	}
}

// PackageManager returns the commands of a flavor's package manager.
func (c *Catalog) PackageManager(f *Flavor) PackageManager { return c.managers[f.PackageManager] }

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
