package flavors

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEmbeddedFlavorsLoad(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Lookup("debian", "")
	if err != nil {
		t.Fatal(err)
	}
	if f.ID() != "debian-bookworm" || f.PackageManager != "apt" || f.Init != "systemd" || f.Initrd != "dracut" {
		t.Errorf("debian flavor = %+v", f)
	}
	if f.Bootstrap == nil || f.Bootstrap.Tool != "mmdebstrap" {
		t.Errorf("debian must bootstrap offline with mmdebstrap, got %+v", f.Bootstrap)
	}
	pkgs, err := f.PackagesFor("amd64")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"linux-image-amd64", "dracut", "dracut-live", "systemd", "grub-efi-amd64-bin", "grub-pc-bin"} {
		if !slices.Contains(pkgs, want) {
			t.Errorf("amd64 packages lack %s: %v", want, pkgs)
		}
	}
	if _, err := f.PackagesFor("riscv64"); err == nil || !strings.Contains(err.Error(), "amd64") {
		t.Errorf("unsupported arch error should list the supported ones, got %v", err)
	}
	if pm := c.PackageManager(f); !strings.Contains(pm.Install, "apt-get install") || len(pm.CacheDirs) == 0 {
		t.Errorf("apt package manager = %+v", pm)
	}
}

func TestLookupErrorsListValidNames(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup("nosuch", "")
	if err == nil || !strings.Contains(err.Error(), "debian") {
		t.Errorf("unknown flavor error should list valid names, got %v", err)
	}
	_, err = c.Lookup("debian", "sid")
	if err == nil || !strings.Contains(err.Error(), "debian-bookworm") {
		t.Errorf("unknown release error should list valid ids, got %v", err)
	}
}

const goodManagers = "apt:\n  install: apt-get install\n"

func TestBadFlavorFiles(t *testing.T) {
	valid := "name: x\nrelease: \"1\"\nfamily: x\nbase_image: x:1\npackage_manager: apt\ninit: systemd\ninitrd: dracut\n" +
		"os_release: {id: x, version_id: \"1\"}\nkernel: {amd64: k, arm64: k}\narch_packages: {amd64: [g], arm64: []}\n" +
		"grub: {mkimage: grub-mkimage, lib: /usr/lib/grub}\n"
	cases := map[string]struct {
		file, content, want string
	}{
		"unknown key":     {"x-1.yaml", valid + "colour: blue\n", "field colour not found"},
		"missing keys":    {"x-1.yaml", "name: x\nrelease: \"1\"\n", "missing keys"},
		"bad manager":     {"x-1.yaml", strings.Replace(valid, "package_manager: apt", "package_manager: pacman", 1), `"pacman" is not one of apt`},
		"bad init":        {"x-1.yaml", strings.Replace(valid, "init: systemd", "init: runit", 1), "init \"runit\""},
		"wrong file name": {"y-1.yaml", valid, "must be named x-1.yaml"},
		"syntax":          {"x-1.yaml", "name: [\n", "flavors/x-1.yaml"},
		"no os_release":   {"x-1.yaml", strings.Replace(valid, "os_release: {id: x, version_id: \"1\"}\n", "", 1), "os_release.id"},
		"bad os id":       {"x-1.yaml", strings.Replace(valid, "id: x,", "id: X Linux,", 1), `os_release.id "X Linux"`},
		"no kernel":       {"x-1.yaml", strings.Replace(valid, "kernel: {amd64: k, arm64: k}\n", "", 1), "missing keys: kernel"},
		"kernel lacks arch": {"x-1.yaml", strings.Replace(valid, "kernel: {amd64: k, arm64: k}", "kernel: {amd64: k}", 1),
			"kernel names no package for arm64"},
		"kernel extra arch": {"x-1.yaml", strings.Replace(valid, "kernel: {amd64: k, arm64: k}", "kernel: {amd64: k, arm64: k, s390x: k}", 1),
			"kernel lists s390x"},
		"no arm64":          {"x-1.yaml", strings.Replace(valid, ", arm64: []}", "}", 1), "arch_packages lacks arm64"},
		"empty package":     {"x-1.yaml", valid + "packages: [a, \"\"]\n", "packages has an empty entry"},
		"empty pre_install": {"x-1.yaml", valid + "pre_install: [\"\"]\n", "pre_install has an empty entry"},
		"secure boot path": {"x-1.yaml", valid + "secure_boot: {amd64: {packages: [s], shim: /a/../shim, grub: /g, mok_manager: /m, grub_prefix: /EFI/x}}\n",
			`secure_boot.amd64: shim "/a/../shim"`},
		"secure boot shell": {"x-1.yaml", valid + "secure_boot: {amd64: {packages: [s], shim: \"/s;reboot\", grub: /g, mok_manager: /m, grub_prefix: /EFI/x}}\n",
			`shim "/s;reboot"`},
		"secure boot prefix": {"x-1.yaml", valid + "secure_boot: {amd64: {packages: [s], shim: /s, grub: /g, mok_manager: /m, grub_prefix: /boot/grub}}\n",
			`grub_prefix "/boot/grub": want the ESP directory`},
		"secure boot no packages": {"x-1.yaml", valid + "secure_boot: {amd64: {shim: /s, grub: /g, mok_manager: /m, grub_prefix: /EFI/x}}\n",
			"packages must name"},
		"secure boot arch": {"x-1.yaml", valid + "secure_boot: {s390x: {packages: [s], shim: /s, grub: /g, mok_manager: /m, grub_prefix: /EFI/x}}\n",
			"secure_boot lists s390x"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"package-managers.yaml": {Data: []byte(goodManagers)},
				tc.file:                 {Data: []byte(tc.content)},
			}
			_, err := LoadFS(fsys)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.file) {
				t.Errorf("error %v does not name the file %s", err, tc.file)
			}
		})
	}
	if _, err := LoadFS(fstest.MapFS{
		"package-managers.yaml": {Data: []byte(goodManagers)},
		"x-1.yaml":              {Data: []byte(valid)},
	}); err != nil {
		t.Errorf("valid flavor rejected: %v", err)
	}
}

func TestValidFlavorFieldsDecode(t *testing.T) {
	valid := "name: x\nrelease: \"1\"\nfamily: x\nbase_image: x:1\npackage_manager: apt\ninit: systemd\ninitrd: dracut\n" +
		"os_release: {id: x, version_id: \"1\"}\nkernel: {amd64: k-amd, arm64: k-arm}\narch_packages: {amd64: [g], arm64: []}\n" +
		"grub: {mkimage: grub-mkimage, lib: /usr/lib/grub}\npackages: [p]\npre_install: [\"echo one\", \"echo two\"]\n"
	c, err := LoadFS(fstest.MapFS{
		"package-managers.yaml": {Data: []byte(goodManagers)},
		"x-1.yaml":              {Data: []byte(valid)},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.Lookup("x", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.PreInstall, []string{"echo one", "echo two"}) {
		t.Errorf("pre_install = %q", f.PreInstall)
	}
	if f.OSRelease != (OSRelease{ID: "x", VersionID: "1"}) {
		t.Errorf("os_release = %+v", f.OSRelease)
	}
	for arch, want := range map[string][]string{"amd64": {"p", "k-amd", "g"}, "arm64": {"p", "k-arm"}} {
		got, err := f.PackagesFor(arch)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("PackagesFor(%s) = %v, %v; want %v", arch, got, err, want)
		}
	}
}

func TestOverlappingOSReleasesRejected(t *testing.T) {
	flavor := func(release, osRelease string) string {
		def := ""
		if release == "a" {
			def = "default: true\n"
		}
		return "name: x\nrelease: \"" + release + "\"\n" + def + "family: x\nbase_image: x:1\npackage_manager: apt\ninit: systemd\ninitrd: dracut\n" +
			"os_release: " + osRelease + "\nkernel: {amd64: k, arm64: k}\narch_packages: {amd64: [], arm64: []}\n" +
			"grub: {mkimage: grub-mkimage, lib: /usr/lib/grub}\n"
	}
	for name, pair := range map[string][2]string{
		"same version":     {"{id: x, version_id: \"9\"}", "{id: x, version_id: \"9\"}"},
		"prefix":           {"{id: x, version_id: \"9\"}", "{id: x, version_id: \"9.4\"}"},
		"any version":      {"{id: x}", "{id: x, version_id: \"2\"}"},
		"both any version": {"{id: x}", "{id: x}"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadFS(fstest.MapFS{
				"package-managers.yaml": {Data: []byte(goodManagers)},
				"x-a.yaml":              {Data: []byte(flavor("a", pair[0]))},
				"x-b.yaml":              {Data: []byte(flavor("b", pair[1]))},
			})
			if err == nil || !strings.Contains(err.Error(), "flavors/x-a.yaml") || !strings.Contains(err.Error(), "flavors/x-b.yaml") {
				t.Errorf("overlapping os_release not refused with both files named: %v", err)
			}
		})
	}
	if _, err := LoadFS(fstest.MapFS{
		"package-managers.yaml": {Data: []byte(goodManagers)},
		"x-a.yaml":              {Data: []byte(flavor("a", "{id: x, version_id: \"3.2\"}"))},
		"x-b.yaml":              {Data: []byte(flavor("b", "{id: x, version_id: \"3.20\"}"))},
	}); err != nil {
		t.Errorf("3.2 and 3.20 are distinct releases: %v", err)
	}
}

// Every flavor file loads, can be looked up by its name and release, and has
// what a build needs for both architectures.
func TestEveryFlavor(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"alpine-3.20", "alpine-3.21", "debian-bookworm", "fedora-40", "fedora-41", "fedora-42",
		"opensuse-leap-15.6", "opensuse-tumbleweed", "rocky-9", "ubuntu-22.04", "ubuntu-24.04",
	}
	if got := c.IDs(); !slices.Equal(got, want) {
		t.Errorf("flavors = %v, want %v", got, want)
	}
	for _, id := range c.IDs() {
		t.Run(id, func(t *testing.T) {
			f := c.flavors[id]
			got, err := c.Lookup(f.Name, f.Release)
			if err != nil || got != f {
				t.Fatalf("Lookup(%q, %q) = %v, %v", f.Name, f.Release, got, err)
			}
			if pm := c.PackageManager(f); pm.Install == "" {
				t.Errorf("package manager %s has no install command", f.PackageManager)
			}
			if f.Bootstrap != nil && f.Name != "debian" {
				t.Errorf("only Debian bootstraps from its mirror, %s has %+v", id, f.Bootstrap)
			}
			for _, arch := range requiredArchs {
				pkgs, err := f.PackagesFor(arch)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Contains(pkgs, f.Kernel[arch]) {
					t.Errorf("%s packages lack the kernel %s: %v", arch, f.Kernel[arch], pkgs)
				}
				// The initrd tool is a package of the same name on every distro.
				if !slices.Contains(pkgs, f.Initrd) {
					t.Errorf("%s packages lack the initrd tool %s: %v", arch, f.Initrd, pkgs)
				}
				if dup := duplicates(pkgs); len(dup) > 0 {
					t.Errorf("%s packages listed twice: %v", arch, dup)
				}
			}
		})
	}
	// A name with one release needs no FLAVOR_RELEASE; one with several
	// gives its default, the newest stable release; upstream's names are
	// aliases of one release.
	for _, c2 := range []struct{ name, release, want string }{
		{"rocky", "", "rocky-9"}, {"debian", "", "debian-bookworm"},
		{"opensuse", "", "opensuse-leap-15.6"}, {"alpine", "", "alpine-3.21"},
		{"ubuntu", "", "ubuntu-24.04"}, {"fedora", "", "fedora-42"},
		{"opensuse", "tumbleweed", "opensuse-tumbleweed"},
		{"opensuse-leap", "", "opensuse-leap-15.6"}, {"opensuse-tumbleweed", "", "opensuse-tumbleweed"},
		{"opensuse-tumbleweed", "tumbleweed", "opensuse-tumbleweed"}, {"rockylinux", "", "rocky-9"},
	} {
		if f, err := c.Lookup(c2.name, c2.release); err != nil || f.ID() != c2.want {
			t.Errorf("Lookup(%q, %q) = %v, %v; want %s", c2.name, c2.release, f, err, c2.want)
		}
	}
	if _, err := c.Lookup("opensuse-leap", "tumbleweed"); err == nil || !strings.Contains(err.Error(), "FLAVOR=opensuse") {
		t.Errorf("an alias with another release: %v", err)
	}
	lines := strings.Join(c.Releases(), "\n")
	for _, want := range []string{"opensuse: leap-15.6 (default), tumbleweed; aliases opensuse-leap, opensuse-tumbleweed", "rocky: 9; aliases rockylinux", "debian: bookworm\n"} {
		if !strings.Contains(lines+"\n", want) {
			t.Errorf("Releases() lacks %q:\n%s", want, lines)
		}
	}
}

// A name with several releases and no default, two defaults, an alias that
// is a flavor's name or another release's alias: refused at load.
func TestDefaultsAndAliasesChecked(t *testing.T) {
	flavor := func(name, release, extra string) []byte {
		return []byte("name: " + name + "\nrelease: \"" + release + "\"\n" + extra + "family: x\nbase_image: x:1\npackage_manager: apt\ninit: systemd\ninitrd: dracut\n" +
			"os_release: {id: " + name + ", version_id: \"" + release + "\"}\nkernel: {amd64: k, arm64: k}\narch_packages: {amd64: [], arm64: []}\n" +
			"grub: {mkimage: grub-mkimage, lib: /usr/lib/grub}\n")
	}
	for what, c := range map[string]struct {
		a, b, want string
	}{
		"no default":         {"", "", "0 marked default"},
		"two defaults":       {"default: true\n", "default: true\n", "2 marked default"},
		"alias is a name":    {"default: true\naliases: [y]\n", "", "is the name of a flavor"},
		"alias twice":        {"default: true\naliases: [x-old]\n", "aliases: [x-old]\n", "also one of"},
		"alias with a space": {"default: true\naliases: [\"x old\"]\n", "", "lowercase"},
	} {
		_, err := LoadFS(fstest.MapFS{
			"package-managers.yaml": {Data: []byte(goodManagers)},
			"x-1.yaml":              {Data: flavor("x", "1", c.a)},
			"x-2.yaml":              {Data: flavor("x", "2", c.b)},
			"y-1.yaml":              {Data: flavor("y", "1", "")},
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", what, err, c.want)
		}
	}
}

func duplicates(list []string) []string {
	seen := map[string]bool{}
	var dup []string
	for _, s := range list {
		if seen[s] {
			dup = append(dup, s)
		}
		seen[s] = true
	}
	return dup
}
