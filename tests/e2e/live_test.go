//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/tests/qemu"
)

// artifact returns the path in env var name, failing (never skipping) when
// the variable or the file is missing.
func logPath(t *testing.T) string {
	dir := filepath.Join(outDir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".serial.log")
}

// checkLive checks a live boot from inside (TestArtifactsISO boots the ISO
// as a USB stick; TestAutoInstall boots the frontend's ISO as a CD under
// both firmwares and installs from its live system).
func checkLive(ctx context.Context, t *testing.T, m *qemu.Machine) {
	t.Helper()
	run := shell(ctx, t, m)

	rel, err := release.Parse([]byte(run("cat /etc/kairos-release")))
	if err != nil {
		t.Fatalf("parsing /etc/kairos-release: %v", err)
	}
	if rel["KAIROS_FLAVOR"] != "debian" {
		t.Errorf("KAIROS_FLAVOR=%q, want debian", rel["KAIROS_FLAVOR"])
	}
	if rel["KAIROS_VERSION"] != e2eVersion {
		t.Errorf("KAIROS_VERSION=%q, want %q", rel["KAIROS_VERSION"], e2eVersion)
	}

	if v := run("kairos-agent version"); v == "" {
		t.Errorf("kairos-agent version printed nothing")
	} else if v != e2eVersion {
		t.Errorf("kairos-agent version = %q, want %q", v, e2eVersion)
	}

	// Media boot through the agent as the initramfs's /init; a network
	// boot (root=live:http://...) is dracut's (livenet), handed over.
	fast := run("sudo journalctl -b -o cat | grep -c 'root assembled in [0-9.]*s, starting' || true")
	if strings.Contains(run("cat /proc/cmdline"), "root=live:http") {
		if fast != "0" {
			t.Errorf("a network boot went through the agent's initramfs path, want dracut's livenet")
		}
	} else {
		if fast != "1" {
			t.Errorf("the live boot did not go through the agent's initramfs path (kairos: root assembled in ...: %q lines)", fast)
		}
		if fs := run("findmnt -n -o FSTYPE /run/initramfs/live"); fs != "iso9660" {
			t.Errorf("/run/initramfs/live is %q, want the medium (iso9660)", fs)
		}
	}
	if fs := run("findmnt -n -o FSTYPE /"); fs != "overlay" {
		t.Errorf("/ is %q, want overlay", fs)
	}
	// The overlay stacks on the squashfs mounted here, as dmsquash-live
	// does.
	if fs := run("findmnt -n -o FSTYPE /run/rootfsbase"); fs != "squashfs" {
		t.Errorf("/run/rootfsbase is %q, want squashfs (the lower layer of /)", fs)
	}
	if opts := run("findmnt -n -o OPTIONS /"); !strings.Contains(opts, "lowerdir=/run/rootfsbase") {
		t.Errorf("/ overlay options %q do not use /run/rootfsbase as lower dir", opts)
	}
	if mode := run("kairos-agent state get boot"); mode != "livecd_boot" {
		t.Errorf("kairos-agent state get boot = %q, want livecd_boot", mode)
	}
	run("test -f /run/cos/live_mode")

	// The default cloud-config in /system/oem ran through the boot stage.
	if st := run("systemctl is-active cos-setup-boot.service || true"); st != "active" {
		t.Errorf("cos-setup-boot.service is %q, want active", st)
	}
	if motd := run("cat /etc/motd"); !strings.Contains(motd, "Kairos live system") {
		t.Errorf("/etc/motd lacks the live banner from /system/oem/10_live.yaml:\n%s", motd)
	}
	// The live account (logged in above) got its sudo and SSH password
	// login from the fs stage of 10_live.yaml: live media only.
	if id := run("sudo -n id -u"); id != "0" {
		t.Errorf("sudo as kairos on live media: %q", id)
	}
	run(hostKeyCmd) // sshd -T wants host keys
	if pa := run("sudo sshd -T 2>/dev/null | grep -i '^passwordauthentication'"); pa != "passwordauthentication yes" {
		t.Errorf("live sshd: %q, want password logins on", pa)
	}
	// Host keys are made on every live boot: Ed25519 and ECDSA before
	// sshd, RSA in the background (seconds of CPU the boot does not wait
	// for), after which sshd offers it too.
	run("timeout 100 sh -c 'until sudo test -s /etc/ssh/ssh_host_rsa_key.pub; do sleep 2; done'")
	offered := run("for i in $(seq 30); do ssh-keyscan -T 5 127.0.0.1 2>/dev/null | grep -q ssh-rsa && break; sleep 2; done; " +
		"ssh-keyscan -T 5 127.0.0.1 2>/dev/null | cut -d' ' -f2 | sort | tr '\\n' ' '")
	for _, typ := range []string{"ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"} {
		if !strings.Contains(offered, typ) {
			t.Errorf("live sshd offers host keys %q, want %s among them", offered, typ)
		}
	}
}
