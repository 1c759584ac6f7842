package overlay_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/overlay"
)

// trees lists every overlay tree a build can ask for: the common ones and
// those that the flavors' init systems and initrd tools name.
func trees(t *testing.T) []string {
	t.Helper()
	cat, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	out := []string{"rootfs", "build", "iso"}
	for _, f := range cat.Flavors() {
		for _, tree := range []string{"init/" + f.Init, "initrd/" + f.Initrd, "k3s/" + f.Init} {
			if !seen[tree] {
				seen[tree] = true
				out = append(out, tree)
			}
		}
	}
	return out
}

// Every tree a flavor names exists and holds files: Tree refuses a missing
// one, and an empty one would silently ship nothing.
func TestFlavorTreesExist(t *testing.T) {
	for _, tree := range trees(t) {
		files, err := overlay.Tree(tree)
		if err != nil {
			t.Errorf("%s: %v", tree, err)
			continue
		}
		if len(files) == 0 {
			t.Errorf("overlay tree %s is empty", tree)
		}
	}
}

// Scripts keep their execute bit (embed drops it; the modes file restores
// it) and parse.
func TestScripts(t *testing.T) {
	shells := map[string]string{"#!/bin/sh": "sh", "#!/sbin/openrc-run": "sh", "#!/bin/bash": "bash"}
	for _, tree := range trees(t) {
		files, err := overlay.Tree(tree)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if !bytes.HasPrefix(f.Data, []byte("#!")) {
				continue
			}
			name := tree + "/" + f.Path
			if f.Mode != 0o755 {
				t.Errorf("%s starts with #! but has mode %o: list it in overlay/modes", name, f.Mode)
			}
			interp, _, _ := bytes.Cut(f.Data, []byte("\n"))
			shell, ok := shells[strings.TrimSpace(string(interp))]
			if !ok {
				t.Errorf("%s: unexpected interpreter %q", name, interp)
				continue
			}
			if _, err := exec.LookPath(shell); err != nil {
				t.Logf("%s: no %s here to check its syntax", name, shell)
				continue
			}
			cmd := exec.Command(shell, "-n")
			cmd.Stdin = bytes.NewReader(f.Data)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s does not parse: %v\n%s", name, err, out)
			}
		}
	}
}

// The mkinitfs /init understands the live media's kernel command line as
// dracut's dmsquash-live does. Its functions are checked here under the
// host's sh, with the device lookup stubbed; booting it needs Alpine.
func TestMkinitfsInitParsesLiveCmdline(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatalf("the host's sh runs this test: %v", err)
	}
	path := scriptFile(t, "initrd/mkinitfs", "usr/lib/kairos/mkinitfs/init")
	run := func(cmdline, script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", `. "$INIT"; cmdline=$CMDLINE; `+script)
		cmd.Env = append(os.Environ(), "INIT="+path, "CMDLINE="+cmdline)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	query := `echo "spec=$(live_spec "$(arg root)") image=$(live_image) ram=$(flag rd.live.ram && echo yes)"`

	// Every entry of the ISO menu that the dracut flavors boot.
	iso, err := overlay.Tree("iso")
	if err != nil {
		t.Fatal(err)
	}
	entries := 0
	for _, f := range iso {
		for _, line := range strings.Split(string(f.Data), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || fields[0] != "linux" || !strings.Contains(line, "root=live:") {
				continue
			}
			entries++
			cmdline := strings.Join(fields[2:], " ")
			want := "spec=LABEL=COS_LIVE image=/run/initramfs/live/rootfs.squashfs ram="
			if strings.Contains(cmdline, "rd.live.ram=1") {
				want += "yes"
			}
			if got := strings.TrimSpace(run(cmdline, query)); got != want {
				t.Errorf("%s: %q\n got %s\nwant %s", f.Path, cmdline, got, want)
			}
		}
	}
	if entries == 0 {
		t.Error("no live entries found in the ISO menus")
	}

	for cmdline, want := range map[string]string{
		// dmsquash-live's defaults.
		"root=live:LABEL=X": "spec=LABEL=X image=/run/initramfs/live/LiveOS/squashfs.img ram=",
		"root=live:UUID=1-2 rd.live.dir=/a/b/ rd.live.squashimg=s.img rd.live.ram": "spec=UUID=1-2 image=/run/initramfs/live/a/b/s.img ram=yes",
		// The last value wins; a glob on the command line stays a word.
		"root=live:/dev/sr0 root=live:CDLABEL=* rd.live.ram=0": "spec=LABEL=* image=/run/initramfs/live/LiveOS/squashfs.img ram=",
	} {
		if got := strings.TrimSpace(run(cmdline, query)); got != want {
			t.Errorf("%q:\n got %s\nwant %s", cmdline, got, want)
		}
	}

	// Devices by label: findfs first, busybox blkid's listing when it fails.
	stubs := `findfs() { return 1; }; blkid() { printf '%s\n' '/dev/sr0: LABEL="COS_LIVE" TYPE="iso9660"' '/dev/vda1: LABEL="COS" UUID="u-1"'; }; `
	for spec, want := range map[string]string{"LABEL=COS_LIVE": "/dev/sr0", "LABEL=COS": "/dev/vda1", "UUID=u-1": "/dev/vda1", "LABEL=COS_OEM": ""} {
		if got := strings.TrimSpace(run("", stubs+`find_dev "`+spec+`"`)); got != want {
			t.Errorf("find_dev %s = %q, want %q", spec, got, want)
		}
	}
}

// suc-upgrade compares versions and upgrades the host with this root,
// with the agent and the reboot stubbed.
func TestSucUpgrade(t *testing.T) {
	script := scriptFile(t, "rootfs", "usr/sbin/suc-upgrade")
	root, host := t.TempDir(), t.TempDir()
	for dir, v := range map[string]string{root: "v2.0.0", host: "v1.0.0"} {
		os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
		os.WriteFile(filepath.Join(dir, "etc/kairos-release"), []byte("KAIROS_NAME=\"k\"\nKAIROS_VERSION=\""+v+"\"\n"), 0o644)
	}
	run := func() (string, error) {
		cmd := exec.Command("sh", script)
		cmd.Env = append(os.Environ(), "HOST_DIR="+host, "SUC_ROOT="+root, "SUC_NO_MOUNT=1",
			"KAIROS_AGENT=echo agent", "SUC_REBOOT=echo reboot")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run()
	if err != nil || !strings.Contains(out, "upgrading the host from v1.0.0 to v2.0.0\nagent upgrade --source dir:"+root+"\nreboot\n") {
		t.Errorf("upgrade: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(host, "etc/kairos-release"), []byte("KAIROS_VERSION=v2.0.0\n"), 0o644)
	if out, err := run(); err != nil || out != "suc-upgrade: the host already runs v2.0.0\n" {
		t.Errorf("same version: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(root, "etc/kairos-release"))
	if out, err := run(); err == nil || !strings.Contains(out, "not a Kairos image") {
		t.Errorf("no release: %v\n%s", err, out)
	}
}

// ssh-host-keys makes the keys a machine lacks: Ed25519 and ECDSA first
// (sshd starts with them), RSA apart, then sshd is reloaded; keys that
// exist are kept, half-made ones are made again.
func TestSSHHostKeys(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatalf("the host's ssh-keygen runs this test: %v", err)
	}
	script := scriptFile(t, "rootfs", "usr/lib/kairos/ssh-host-keys")
	dir := t.TempDir()
	run := func(arg string) (string, error) {
		cmd := exec.Command("sh", script, arg)
		cmd.Env = append(os.Environ(), "SSH_HOST_KEYS_DIR="+dir, "SSH_HOST_KEYS_RELOAD=echo reload")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	key := func(typ string) string {
		b, _ := os.ReadFile(filepath.Join(dir, "ssh_host_"+typ+"_key.pub"))
		return string(b)
	}
	// A key cut short by a power loss, and an empty one.
	os.WriteFile(filepath.Join(dir, "ssh_host_ed25519_key.new"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(dir, "ssh_host_ecdsa_key"), nil, 0o600)

	out, err := run("fast")
	if err != nil {
		t.Fatalf("fast: %v\n%s", err, out)
	}
	ed, ec := key("ed25519"), key("ecdsa")
	if !strings.HasPrefix(ed, "ssh-ed25519 ") || !strings.HasPrefix(ec, "ecdsa-sha2-") {
		t.Errorf("fast made %q and %q", ed, ec)
	}
	if _, err := os.Stat(filepath.Join(dir, "ssh_host_rsa_key")); err == nil {
		t.Error("fast made an RSA key")
	}
	for _, typ := range []string{"ed25519", "ecdsa"} {
		st, err := os.Stat(filepath.Join(dir, "ssh_host_"+typ+"_key"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s private key: %v %v, want mode 600", typ, st, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "ssh_host_"+typ+"_key.new")); err == nil {
			t.Errorf("%s: temporary file left", typ)
		}
	}
	if out, err := run("fast"); err != nil || key("ed25519") != ed || key("ecdsa") != ec {
		t.Errorf("second run changed the keys (%v)\n%s", err, out)
	}

	out, err = run("rsa")
	if err != nil || !strings.HasPrefix(key("rsa"), "ssh-rsa ") || !strings.HasSuffix(out, "reload\n") {
		t.Errorf("rsa: %v, key %q\n%s", err, key("rsa"), out)
	}
	rsa := key("rsa")
	if out, err := run("rsa"); err != nil || key("rsa") != rsa || strings.Contains(out, "reload") {
		t.Errorf("rsa again: made a new key or reloaded sshd (%v)\n%s", err, out)
	}
	if _, err := run("everything"); err == nil {
		t.Error("an unknown argument was accepted")
	}
}

// scriptFile writes the overlay file path of tree to a temporary
// directory, executable, and returns where.
func scriptFile(t *testing.T, tree, path string) string {
	t.Helper()
	files, err := overlay.Tree(tree)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Path == path {
			out := filepath.Join(t.TempDir(), filepath.Base(path))
			if err := os.WriteFile(out, f.Data, 0o755); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	t.Fatalf("overlay %s has no %s", tree, path)
	return ""
}
