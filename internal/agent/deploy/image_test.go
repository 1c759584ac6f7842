package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/fstree"
)

func TestCheckImage(t *testing.T) {
	// files: content, or "->target" for a symlink, or "/" for a directory.
	image := func(files map[string]string) *fstree.Node {
		t.Helper()
		root := t.TempDir()
		for p, c := range files {
			full := filepath.Join(root, p)
			os.MkdirAll(filepath.Dir(full), 0o755)
			var err error
			switch {
			case strings.HasPrefix(c, "->"):
				err = os.Symlink(c[2:], full)
			case c == "/":
				err = os.Mkdir(full, 0o755)
			default:
				err = os.WriteFile(full, []byte(c), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		n, err := fstree.DirSource(root)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const rel = "etc/kairos-release"
	for name, c := range map[string]struct {
		files map[string]string
		want  string // "" = accepted
	}{
		"plain files": {map[string]string{rel: "KAIROS_VERSION=v1\n", "boot/vmlinuz": "k", "boot/initrd": "i"}, ""},
		// As distributions ship them: links to versioned names, relative
		// or absolute; an absolute one resolves inside the image.
		"symlinks": {map[string]string{rel: "KAIROS_VERSION=v1\n", "boot/vmlinuz-6.1": "k", "boot/vmlinuz": "->vmlinuz-6.1",
			"usr/lib/initrd.img": "i", "boot/initrd": "->/usr/lib/initrd.img"}, ""},
		"no release":      {map[string]string{"boot/vmlinuz": "k", "boot/initrd": "i"}, "has no /etc/kairos-release"},
		"no initrd":       {map[string]string{rel: "", "boot/vmlinuz": "k"}, "has no /boot/initrd"},
		"dangling kernel": {map[string]string{rel: "", "boot/vmlinuz": "->vmlinuz-6.1", "boot/initrd": "i"}, "has no /boot/vmlinuz"},
		// ../.. stops at the image's root, as it does once booted.
		"link out of the tree": {map[string]string{rel: "", "boot/vmlinuz": "k", "boot/initrd": "->../../../../etc/hostname"}, "has no /boot/initrd"},
		"initrd directory":     {map[string]string{rel: "", "boot/vmlinuz": "k", "boot/initrd": "/"}, "/boot/initrd is not a regular file"},
		"empty kernel":         {map[string]string{rel: "", "boot/vmlinuz": "", "boot/initrd": "i"}, "/boot/vmlinuz is empty"},
	} {
		_, err := CheckImage(image(c.files))
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestArch(t *testing.T) {
	for want, rel := range map[string]map[string]string{
		"arm64": {"KAIROS_TARGETARCH": "arm64", "KAIROS_ARCH": "amd64"}, // the target is what it runs on
		"amd64": {"KAIROS_ARCH": "x86_64"},
		"":      {"KAIROS_VERSION": "v1"},
	} {
		if got := Arch(rel); got != want {
			t.Errorf("Arch(%v) = %q, want %q", rel, got, want)
		}
	}
}
