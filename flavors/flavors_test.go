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
	valid := "name: x\nrelease: \"1\"\nfamily: x\nbase_image: x:1\npackage_manager: apt\ninit: systemd\ninitrd: dracut\narch_packages: {amd64: [k]}\ngrub: {mkimage: grub-mkimage, lib: /usr/lib/grub}\n"
	cases := map[string]struct {
		file, content, want string
	}{
		"unknown key":     {"x-1.yaml", valid + "colour: blue\n", "field colour not found"},
		"missing keys":    {"x-1.yaml", "name: x\nrelease: \"1\"\n", "missing keys"},
		"bad manager":     {"x-1.yaml", strings.Replace(valid, "package_manager: apt", "package_manager: pacman", 1), `"pacman" is not one of apt`},
		"bad init":        {"x-1.yaml", strings.Replace(valid, "init: systemd", "init: runit", 1), "init \"runit\""},
		"wrong file name": {"y-1.yaml", valid, "must be named x-1.yaml"},
		"syntax":          {"x-1.yaml", "name: [\n", "flavors/x-1.yaml"},
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
