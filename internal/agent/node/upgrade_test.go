package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
	"github.com/kairos-io/kairos/internal/agent/deploy"
	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/agent/install"
	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/diskfmt/ext4/ext4test"
	"github.com/kairos-io/kairos/internal/grubenv"
)

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tree is a small Kairos-like root of the given version.
func tree(t *testing.T, version string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range map[string]string{
		"etc/kairos-release":              "KAIROS_NAME=\"kairos-test\"\nKAIROS_VERSION=\"" + version + "\"\n",
		"etc/cos/grub.cfg":                "# menu\n",
		"etc/cos/grub_efi.cfg":            "# first stage\n",
		"usr/lib/kairos/boot/BOOTX64.EFI": "MZ",
		"boot/vmlinuz":                    "kernel " + version,
		"boot/initrd":                     "initrd " + version,
	} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// installed is a loop disk installed with v1, and the node upgrading it.
func installed(t *testing.T) (string, *Node) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the upgrade tests write loop devices: run as root")
	}
	f := filepath.Join(t.TempDir(), "disk.raw")
	os.WriteFile(f, nil, 0o644)
	os.Truncate(f, 3<<30)
	dev := strings.TrimSpace(sh(t, "losetup", "--find", "--show", "--partscan", f))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	// The lock is the test's own: another test run on this machine must
	// not make this one wait or fail.
	lock := filepath.Join(t.TempDir(), "kairos-agent.lock")
	in := &install.Installer{Devices: blockdev.Of(host.System), LiveRoot: tree(t, "v1"), WorkDir: t.TempDir(), LockFile: lock}
	plan, err := in.Plan(context.Background(), install.Options{Device: dev})
	if err != nil {
		t.Fatal(err)
	}
	defer plan.Close()
	if err := in.Run(context.Background(), plan); err != nil {
		t.Fatal(err)
	}
	parts := map[string]string{"COS_OEM": dev + "p2", "COS_RECOVERY": dev + "p3", "COS_STATE": dev + "p4", "COS_PERSISTENT": dev + "p5"}
	var out bytes.Buffer
	n := &Node{Mode: state.ActiveBoot, Mounts: "/proc/self/mounts", WorkDir: t.TempDir(), Out: &out, LockFile: lock,
		Device: func(label string) (string, error) { return parts[label], nil }}
	t.Cleanup(func() { t.Log(out.String()) })
	return dev, n
}

// version reads KAIROS_VERSION inside an image on a partition.
func version(t *testing.T, part, img string) string {
	t.Helper()
	dir := t.TempDir()
	sh(t, "mount", "-o", "ro", part, dir)
	defer sh(t, "umount", dir)
	p := filepath.Join(dir, "cOS", img)
	if _, err := os.Stat(p); err != nil {
		return "missing"
	}
	rel, err := ext4test.ReadFile(p, "/etc/kairos-release")
	if err != nil {
		t.Fatal(err)
	}
	_, v, _ := strings.Cut(string(rel), "KAIROS_VERSION=\"")
	v, _, _ = strings.Cut(v, "\"")
	return v + " " + strings.TrimSpace(sh(t, "blkid", "-o", "value", "-s", "LABEL", p))
}

// env reads a grub environment file on a partition.
func env(t *testing.T, part, file string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	sh(t, "mount", "-o", "ro", part, dir)
	defer sh(t, "umount", dir)
	data, _ := os.ReadFile(filepath.Join(dir, file))
	vars, err := grubenv.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return vars
}

// bootable checks an image on a partition as grub and the initramfs use
// it: a clean ext4 with the kernel and initrd grub loads.
func bootable(t *testing.T, part, img string) {
	t.Helper()
	dir := t.TempDir()
	sh(t, "mount", "-o", "ro", part, dir)
	defer sh(t, "umount", dir)
	p := filepath.Join(dir, "cOS", img)
	if err := ext4test.Fsck(p); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"/boot/vmlinuz", "/boot/initrd"} {
		if _, err := ext4test.ReadFile(p, f); err != nil {
			t.Errorf("%s: %v", img, err)
		}
	}
}

func TestUpgradeRotatesAndArmsBoot(t *testing.T) {
	dev, n := installed(t)
	ctx := context.Background()
	// Images without BIOS assets: no bios partition, state is p4.
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v2")}); err != nil {
		t.Fatal(err)
	}
	if got := version(t, dev+"p4", "active.img"); got != "v2 COS_ACTIVE" {
		t.Errorf("active.img %s", got)
	}
	if got := version(t, dev+"p4", "passive.img"); got != "v1 COS_PASSIVE" {
		t.Errorf("passive.img %s", got)
	}
	if got := version(t, dev+"p4", "transition.img"); got != "missing" {
		t.Errorf("transition.img left: %s", got)
	}
	if v := env(t, dev+"p4", "boot_assessment"); v["enable_boot_assessment"] != "yes" {
		t.Errorf("boot assessment not armed: %v", v)
	}
	if v := env(t, dev+"p2", "grubenv"); v["next_entry"] != "cos" {
		t.Errorf("next_entry not set: %v", v)
	}

	// Recovery slot.
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v3"), Recovery: true}); err != nil {
		t.Fatal(err)
	}
	if got := version(t, dev+"p3", "recovery.img"); got != "v3 COS_SYSTEM" {
		t.Errorf("recovery.img %s", got)
	}
	if got := version(t, dev+"p4", "active.img"); got != "v2 COS_ACTIVE" {
		t.Errorf("a recovery upgrade changed active.img: %s", got)
	}

	// Booted from passive (after a failed upgrade): the running passive
	// stays, active is replaced.
	n.Mode = state.PassiveBoot
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v4")}); err != nil {
		t.Fatal(err)
	}
	if a, p := version(t, dev+"p4", "active.img"), version(t, dev+"p4", "passive.img"); a != "v4 COS_ACTIVE" || p != "v1 COS_PASSIVE" {
		t.Errorf("from passive: active %s, passive %s", a, p)
	}
}

// Booted from recovery.squashfs, the recovery upgrade removes the running
// image: COS_RECOVERY, mounted read-only as the initramfs leaves it, cannot
// go back to read-only before the reboot. The upgrade still stands.
func TestUpgradeRecoveryFromRunningSquashfs(t *testing.T) {
	dev, n := installed(t)
	dir := t.TempDir()
	sh(t, "mount", dev+"p3", dir)
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	squash := filepath.Join(dir, "cOS", "recovery.squashfs")
	if err := os.WriteFile(squash, []byte("the running recovery"), 0o644); err != nil {
		t.Fatal(err)
	}
	sh(t, "mount", "-o", "remount,ro", dir)
	running, err := os.Open(squash) // what the loop device holds
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()

	n.Mode = state.RecoveryBoot
	if err := n.Upgrade(context.Background(), UpgradeOptions{Source: "dir:" + tree(t, "v5"), Recovery: true}); err != nil {
		t.Fatalf("recovery upgrade from the running squashfs: %v", err)
	}
	if !strings.Contains(n.Out.(*bytes.Buffer).String(), "stays writable until the reboot") {
		t.Errorf("no note that COS_RECOVERY stays writable:\n%s", n.Out)
	}
	if _, err := os.Stat(squash); !os.IsNotExist(err) {
		t.Errorf("recovery.squashfs still there (grub would boot it): %v", err)
	}
	running.Close()
	sh(t, "umount", dir)
	if got := version(t, dev+"p3", "recovery.img"); got != "v5 COS_SYSTEM" {
		t.Errorf("recovery.img %s", got)
	}
}

func TestUpgradeRefusals(t *testing.T) {
	dev, n := installed(t)
	ctx := context.Background()
	bad := tree(t, "v2")
	os.Remove(filepath.Join(bad, "etc/kairos-release"))
	for _, c := range []struct {
		mode state.BootMode
		src  string
		want string
	}{
		{state.LiveCDBoot, "dir:" + tree(t, "v2"), "booted from live media"},
		{state.ActiveBoot, "dir:" + bad, "it is not a Kairos image"},
		{state.ActiveBoot, "http://x", "want one of oci:<registry ref>"},
		{state.ActiveBoot, "", "no source"},
	} {
		n.Mode = c.mode
		if err := n.Upgrade(ctx, UpgradeOptions{Source: c.src}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %q: %v, want %q", c.mode, c.src, err, c.want)
		}
	}

	// No source: the newest release of the image's line in its own
	// repository, or nothing to do; an image naming no repository says
	// how to give one.
	rel := filepath.Join(t.TempDir(), "kairos-release")
	n.Release = rel
	os.WriteFile(rel, []byte("KAIROS_VERSION=v1\nKAIROS_FLAVOR_RELEASE=bookworm\nKAIROS_VARIANT=core\nKAIROS_TARGETARCH=amd64\nKAIROS_MODEL=generic\n"), 0o644)
	if err := n.Upgrade(ctx, UpgradeOptions{}); err == nil || !strings.Contains(err.Error(), "names no repository of its own (KAIROS_IMAGE_REPO") {
		t.Errorf("no repository: %v", err)
	}
	os.WriteFile(rel, []byte("KAIROS_VERSION=v1.0.0\nKAIROS_FLAVOR_RELEASE=bookworm\nKAIROS_VARIANT=core\nKAIROS_TARGETARCH=amd64\nKAIROS_MODEL=generic\nKAIROS_IMAGE_REPO=127.0.0.1:9/kairos\n"), 0o644)
	var listed string
	n.ListTags = func(_ context.Context, repo string, insecure bool) ([]string, error) {
		listed = fmt.Sprintf("%s %v", repo, insecure)
		return []string{"bookworm-core-amd64-generic-v1.0.0", "bookworm-core-amd64-generic-v0.9.0"}, nil
	}
	if err := n.Upgrade(ctx, UpgradeOptions{AllowInsecure: true}); err != nil || listed != "127.0.0.1:9/kairos true" {
		t.Errorf("running the newest: %v (listed %q)", err, listed)
	}
	n.ListTags = func(context.Context, string, bool) ([]string, error) {
		return []string{"bookworm-core-amd64-generic-v1.1.0"}, nil
	}
	if err := n.Upgrade(ctx, UpgradeOptions{}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:9/kairos:bookworm-core-amd64-generic-v1.1.0") {
		t.Errorf("newer release: %v, want it pulled", err)
	}
	n.ListTags, n.Release = nil, ""

	// A full COS_STATE: refused with the sizes before anything is written.
	n.Mode = state.ActiveBoot
	dir := t.TempDir()
	sh(t, "mount", dev+"p4", dir)
	sh(t, "fallocate", "-l", "1200M", filepath.Join(dir, "filler"))
	sh(t, "umount", dir)
	err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v2")})
	if err == nil || !strings.Contains(err.Error(), "nothing was changed: COS_STATE has") || !strings.Contains(err.Error(), "MiB free, the new image needs") {
		t.Errorf("full state: %v", err)
	}
	if got := version(t, dev+"p4", "active.img"); got != "v1 COS_ACTIVE" {
		t.Errorf("active.img after refusals: %s", got)
	}
}

func TestResetFromRecovery(t *testing.T) {
	dev, n := installed(t)
	ctx := context.Background()
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v7"), Recovery: true}); err != nil {
		t.Fatal(err)
	}
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v8")}); err != nil {
		t.Fatal(err)
	}
	if err := n.Reset(ctx, ResetOptions{}); err == nil || !strings.Contains(err.Error(), "reset runs from recovery only") {
		t.Errorf("reset from active: %v", err)
	}

	// As a recovery boot has them: COS_RECOVERY read-only, COS_OEM and
	// COS_PERSISTENT mounted, a bind of a persistent path.
	rec, oem, persistent := t.TempDir(), t.TempDir(), t.TempDir()
	sh(t, "mount", "-o", "ro", dev+"p3", rec)
	defer exec.Command("umount", rec).Run()
	sh(t, "mount", dev+"p2", oem)
	defer exec.Command("umount", oem).Run()
	os.WriteFile(filepath.Join(oem, "90_custom.yaml"), []byte("#cloud-config\n"), 0o600)
	sh(t, "mount", dev+"p5", persistent)
	defer exec.Command("umount", persistent).Run()
	os.MkdirAll(filepath.Join(persistent, ".state/home.bind"), 0o755)
	os.WriteFile(filepath.Join(persistent, "user-data"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(persistent, ".state/home.bind/file"), []byte("x"), 0o644)
	bind := t.TempDir()
	sh(t, "mount", "--bind", filepath.Join(persistent, ".state/home.bind"), bind)
	defer exec.Command("umount", bind).Run()

	n.Mode = state.RecoveryBoot
	// Not while an upgrade or install runs.
	release, err := deploy.Lock(n.LockFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Reset(ctx, ResetOptions{}); err == nil || !strings.Contains(err.Error(), "another kairos-agent install/upgrade/reset is running") {
		t.Errorf("reset while locked: %v", err)
	}
	release()
	if a := version(t, dev+"p4", "active.img"); a != "v8 COS_ACTIVE" {
		t.Errorf("a refused reset changed active.img: %s", a)
	}
	if err := n.Reset(ctx, ResetOptions{}); err != nil {
		t.Fatal(err)
	}
	if a, p := version(t, dev+"p4", "active.img"), version(t, dev+"p4", "passive.img"); a != "v7 COS_ACTIVE" || p != "v7 COS_PASSIVE" {
		t.Errorf("after reset: active %s, passive %s (want the recovery image, v7)", a, p)
	}
	// In use (mounted, with a bind): emptied in place.
	if left, _ := os.ReadDir(persistent); len(left) != 1 || left[0].Name() != "lost+found" {
		t.Errorf("COS_PERSISTENT was not erased: %v", left)
	}
	if left, _ := os.ReadDir(bind); len(left) != 0 {
		t.Errorf("a persistent bind path kept %v", left)
	}
	if _, err := os.Stat(filepath.Join(oem, "90_custom.yaml")); err != nil {
		t.Errorf("the OEM cloud-config is gone without --reset-oem: %v", err)
	}
}

func TestConfirmBootClearsAssessment(t *testing.T) {
	dev, n := installed(t)
	if err := n.Upgrade(context.Background(), UpgradeOptions{Source: "dir:" + tree(t, "v2")}); err != nil {
		t.Fatal(err)
	}
	// As the initramfs mounts it: read-only.
	dir := t.TempDir()
	sh(t, "mount", "-o", "ro", dev+"p4", dir)
	defer exec.Command("umount", dir).Run()
	if err := n.ConfirmBoot(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "boot_assessment"))
	if vars, _ := grubenv.Decode(data); len(vars) != 0 {
		t.Errorf("boot assessment not cleared: %v", vars)
	}
	if opts := sh(t, "findmnt", "-n", "-o", "OPTIONS", dir); !strings.HasPrefix(opts, "ro") {
		t.Errorf("COS_STATE left %s", opts)
	}
}

// holdStages holds the upgrade that runs its before-upgrade stage until
// release is closed, so that another one can be started meanwhile.
type holdStages struct{ entered, release chan struct{} }

func (h *holdStages) Has(stage string) bool { return stage == StageBefore }
func (h *holdStages) Run(context.Context, string, string) error {
	close(h.entered)
	<-h.release
	return nil
}

// Two upgrades at once: the second is refused at once, naming the one
// that runs, and the first leaves a disk that boots the new image with the
// old one as passive.
func TestConcurrentUpgradesAreSerialised(t *testing.T) {
	dev, n := installed(t)
	ctx := context.Background()
	v2, v3 := tree(t, "v2"), tree(t, "v3")
	hold := &holdStages{entered: make(chan struct{}), release: make(chan struct{})}
	first, second := *n, *n
	var firstOut bytes.Buffer
	first.Stages, first.Out = hold, &firstOut
	t.Cleanup(func() { t.Log(firstOut.String()) })
	done := make(chan error, 1)
	go func() { done <- first.Upgrade(ctx, UpgradeOptions{Source: "dir:" + v2}) }()
	select {
	case <-hold.entered:
	case err := <-done:
		t.Fatalf("the first upgrade ended before its before-upgrade stage: %v", err)
	}
	err := second.Upgrade(ctx, UpgradeOptions{Source: "dir:" + v3})
	close(hold.release)
	if want := fmt.Sprintf("another kairos-agent install/upgrade/reset is running (pid %d)", os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("the second upgrade: %v, want %q", err, want)
	}
	if err := <-done; err != nil {
		t.Fatalf("the first upgrade: %v", err)
	}
	if a, p := version(t, dev+"p4", "active.img"), version(t, dev+"p4", "passive.img"); a != "v2 COS_ACTIVE" || p != "v1 COS_PASSIVE" {
		t.Errorf("after two upgrades at once: active %s, passive %s (want v2 and v1)", a, p)
	}
	if got := version(t, dev+"p4", "transition.img"); got != "missing" {
		t.Errorf("transition.img left: %s", got)
	}
	bootable(t, dev+"p4", "active.img")
	bootable(t, dev+"p4", "passive.img")

	// Released: the next upgrade runs.
	if err := second.Upgrade(ctx, UpgradeOptions{Source: "dir:" + v3}); err != nil {
		t.Fatalf("an upgrade after the first ended: %v", err)
	}
}

// Boot assessment is armed before the first rename: a crash at any point
// of the rotation leaves an assessed boot (see Node.Upgrade).
func TestUpgradeArmsAssessmentBeforeRenames(t *testing.T) {
	dev, n := installed(t)
	ctx := context.Background()
	var seen []string
	crashAfter := ""
	n.rename = func(oldpath, newpath string) error {
		if err := os.Rename(oldpath, newpath); err != nil {
			return err
		}
		data, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(newpath)), "boot_assessment"))
		vars, _ := grubenv.Decode(data)
		seen = append(seen, fmt.Sprintf("%s -> %s: enable_boot_assessment=%q boot_assessment_tentative=%q",
			filepath.Base(oldpath), filepath.Base(newpath), vars["enable_boot_assessment"], vars["boot_assessment_tentative"]))
		if filepath.Base(newpath) == crashAfter {
			return errors.New("injected crash")
		}
		return nil
	}
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v2")}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`active.img -> passive.img: enable_boot_assessment="yes" boot_assessment_tentative=""`,
		`transition.img -> active.img: enable_boot_assessment="yes" boot_assessment_tentative=""`,
	}
	if !slices.Equal(seen, want) {
		t.Errorf("at the renames:\n%s\nwant:\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}

	// v2 booted as a tentative boot and was confirmed, as ConfirmBoot
	// leaves it; the next upgrade dies right after its first rename.
	dir := t.TempDir()
	sh(t, "mount", dev+"p4", dir)
	err := grubenv.Update(filepath.Join(dir, "boot_assessment"), map[string]string{"enable_boot_assessment": "", "boot_assessment_tentative": ""})
	sh(t, "umount", dir)
	if err != nil {
		t.Fatal(err)
	}
	seen, crashAfter = nil, "passive.img"
	if err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + tree(t, "v3")}); err == nil || !strings.Contains(err.Error(), "injected crash") {
		t.Fatalf("upgrade with a crash after the first rename: %v", err)
	}
	if len(seen) != 1 || seen[0] != want[0] {
		t.Errorf("at the first rename: %v, want %s", seen, want[0])
	}
	// What grub finds: active.img gone (the cos entry fails to load, grub
	// takes the fallback), passive.img the v2 that ran, assessment armed.
	if a, p := version(t, dev+"p4", "active.img"), version(t, dev+"p4", "passive.img"); a != "missing" || !strings.HasPrefix(p, "v2 ") {
		t.Errorf("after the crash: active %s, passive %s", a, p)
	}
	if v := env(t, dev+"p4", "boot_assessment"); v["enable_boot_assessment"] != "yes" {
		t.Errorf("boot assessment after the crash: %v", v)
	}
}

// A source for another architecture, or without the kernel or initrd grub
// boots, is refused before anything is written.
func TestUpgradeRefusesUnbootableSources(t *testing.T) {
	dev, n := installed(t)
	n.Arch = "amd64"
	ctx := context.Background()
	arm := tree(t, "v2")
	f, err := os.OpenFile(filepath.Join(arm, "etc/kairos-release"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("KAIROS_ARCH=\"arm64\"\nKAIROS_TARGETARCH=\"arm64\"\n")
	f.Close()
	noInitrd := tree(t, "v2")
	os.Remove(filepath.Join(noInitrd, "boot/initrd"))
	dangling := tree(t, "v2")
	os.Remove(filepath.Join(dangling, "boot/vmlinuz"))
	os.Symlink("vmlinuz-6.1.0", filepath.Join(dangling, "boot/vmlinuz"))
	for _, c := range []struct {
		src      string
		recovery bool
		want     []string
	}{
		{arm, false, []string{"nothing was changed", "arm64", "amd64"}},
		{arm, true, []string{"nothing was changed", "arm64", "amd64"}},
		{noInitrd, false, []string{"nothing was changed", "/boot/initrd"}},
		{dangling, false, []string{"nothing was changed", "/boot/vmlinuz"}},
	} {
		err := n.Upgrade(ctx, UpgradeOptions{Source: "dir:" + c.src, Recovery: c.recovery})
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s (recovery %v): %v, want %q", c.src, c.recovery, err, w)
			}
		}
	}
	if a, p := version(t, dev+"p4", "active.img"), version(t, dev+"p4", "passive.img"); a != "v1 COS_ACTIVE" || p != "v1 COS_PASSIVE" {
		t.Errorf("after the refusals: active %s, passive %s", a, p)
	}
	if got := version(t, dev+"p3", "recovery.img"); got != "v1 COS_SYSTEM" {
		t.Errorf("recovery.img after the refusals: %s", got)
	}
	if got := version(t, dev+"p4", "transition.img"); got != "missing" {
		t.Errorf("transition.img: %s", got)
	}
	if v := env(t, dev+"p4", "boot_assessment"); len(v) != 0 {
		t.Errorf("boot assessment after the refusals: %v", v)
	}
}
