package bundle

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/tests/registry"
)

// bundleDir is a run:// bundle: run.sh copies its payload where the test
// says (BUNDLE_TEST_OUT) and records what the agent passed it.
func bundleDir(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte(`#!/bin/sh
set -e
cp payload.txt "$BUNDLE_TEST_OUT/"
echo "$BUNDLE_TARGET" > "$BUNDLE_TEST_OUT/target"
[ "$CONTAINERDIR" = "$(pwd)" ] && echo ok > "$BUNDLE_TEST_OUT/containerdir"
`), 0o755)
	os.WriteFile(filepath.Join(dir, "payload.txt"), []byte("from the bundle\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "usr/local/bin"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/local/bin/tool"), []byte("#!/bin/sh\necho tool\n"), 0o755)
	os.Symlink("tool", filepath.Join(dir, "usr/local/bin/tool-link"))
	os.WriteFile(filepath.Join(dir, "usr/local/bin/suid"), []byte("x"), 0o755)
	os.Chmod(filepath.Join(dir, "usr/local/bin/suid"), 0o755|os.ModeSetuid)
	return dir
}

// A run:// bundle from a real registry: its run.sh runs in the unpacked
// image with CONTAINERDIR and BUNDLE_TARGET; a container:// bundle's files
// land in the root; the same image from a `docker save` archive
// (local_file, airgap).
func TestInstallBundles(t *testing.T) {
	reg := registry.Start(t, registry.FreeAddr(t))
	ref := reg.Addr + "/bundles/demo:v1"
	registry.PushDir(t, bundleDir(t), ref)
	out := t.TempDir()
	t.Setenv("BUNDLE_TEST_OUT", out)
	var log bytes.Buffer
	in := Installer{Out: &log, Tmp: t.TempDir()}
	ctx := context.Background()

	if err := in.Install(ctx, cloudconfig.Bundle{Targets: []string{"run://" + ref}}); err != nil {
		t.Fatalf("run://: %v\n%s", err, log.String())
	}
	for f, want := range map[string]string{"payload.txt": "from the bundle\n", "target": "run://" + ref + "\n", "containerdir": "ok\n"} {
		if got, _ := os.ReadFile(filepath.Join(out, f)); string(got) != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}

	root := t.TempDir()
	in.Root = root
	// The node's own directory keeps its mode: the bundle's usr/local is
	// 0755, the node's 0700 here.
	os.MkdirAll(filepath.Join(root, "usr/local"), 0o700)
	os.Chmod(filepath.Join(root, "usr/local"), 0o700)
	if err := in.InstallTarget(ctx, "container://"+ref, false); err != nil {
		t.Fatalf("container://: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "usr/local/bin/tool")); string(got) != "#!/bin/sh\necho tool\n" {
		t.Errorf("container bundle file %q", got)
	}
	if st, err := os.Stat(filepath.Join(root, "usr/local/bin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("tool mode %v %v", st, err)
	}
	if l, _ := os.Readlink(filepath.Join(root, "usr/local/bin/tool-link")); l != "tool" {
		t.Errorf("link %q", l)
	}
	if st, _ := os.Stat(filepath.Join(root, "usr/local")); st.Mode().Perm() != 0o700 {
		t.Errorf("the node's /usr/local became %v", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Join(root, "usr/local/bin/suid")); st == nil || st.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid bit lost: %v", st)
	}

	// Airgap: the image saved next to the node.
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "bundle.tar")
	if err := tarball.WriteToFile(saved, r, img); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(out, "payload.txt"))
	in.Root = ""
	if err := in.Install(ctx, cloudconfig.Bundle{Targets: []string{"run://" + saved}, LocalFile: true}); err != nil {
		t.Fatalf("local docker archive: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "payload.txt")); err != nil {
		t.Errorf("local bundle did not run: %v", err)
	}
}

// Targets the agent cannot install are clear errors, before any pull.
func TestBadTargets(t *testing.T) {
	in := Installer{Out: &bytes.Buffer{}}
	for target, want := range map[string]string{
		"quay.io/x/y":                 "not a bundle target",
		"package://utils/k9s":         "(luet packages) are not supported",
		"run://":                      "not a bundle target",
		"run://127.0.0.1:1/none:v1":   "pulling",
		"run:///nonexistent/file.tar": "",
	} {
		err := in.InstallTarget(context.Background(), target, target == "run:///nonexistent/file.tar")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", target, err, want)
		}
	}
}
