package mount

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLiveBootWritesSentinelOnly(t *testing.T) {
	run := t.TempDir()
	if err := Run(Options{Cmdline: "root=live:CDLABEL=COS_LIVE rd.cos.disable", Sysroot: t.TempDir(), RunDir: run}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(run, "cos", "live_mode")); err != nil {
		t.Errorf("live_mode sentinel: %v", err)
	}
}

func TestUnknownBootIsAClearError(t *testing.T) {
	err := Run(Options{Cmdline: "root=/dev/sda1", RunDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "COS_ACTIVE") {
		t.Errorf("want an error saying what the mounter expects, got %v", err)
	}
}

func TestParseBootImage(t *testing.T) {
	for cmdline, want := range map[string]BootImage{
		"root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img console=ttyS0 rd.cos.oemlabel=COS_OEM panic=5": {Mode: "active_boot", Image: "/cOS/active.img", Partition: "COS_STATE", OEMLabel: "COS_OEM"},
		"root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img upgrade_failure":                             {Mode: "passive_boot", Image: "/cOS/passive.img", Partition: "COS_STATE", OEMLabel: "COS_OEM"},
		"root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img rd.cos.oemlabel=MY_OEM kairos.reset":         {Mode: "recovery_boot", Image: "/cOS/recovery.img", Partition: "COS_RECOVERY", OEMLabel: "MY_OEM"},
	} {
		got, err := ParseBootImage(cmdline)
		if err != nil || got != want {
			t.Errorf("ParseBootImage(%q) = %+v, %v; want %+v", cmdline, got, err, want)
		}
	}
	for _, bad := range []string{"root=live:CDLABEL=COS_LIVE rd.cos.disable", "root=LABEL=COS_ACTIVE", "root=LABEL=COS_ACTIVE cos-img/filename=../x"} {
		if _, err := ParseBootImage(bad); err == nil {
			t.Errorf("ParseBootImage(%q) accepted", bad)
		}
	}
}

// TestSysrootPlanOrder checks the contract's mount order: OEM, the tmpfs,
// overlays on the ephemeral paths, persistent, then the bind paths from
// /usr/local/.state.
func TestSysrootPlanOrder(t *testing.T) {
	b, _ := ParseBootImage("root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img")
	steps := SysrootPlan(b, "/sysroot")
	var got []string
	for _, s := range steps[:6] {
		got = append(got, s.Target)
	}
	want := "/sysroot/oem /run/overlay /sysroot/etc /sysroot/var /sysroot/srv /sysroot/usr/local"
	if strings.Join(got, " ") != want {
		t.Errorf("first mounts %v, want %s", got, want)
	}
	if steps[0].Label != "COS_OEM" || steps[5].Label != "COS_PERSISTENT" {
		t.Errorf("OEM %+v, persistent %+v", steps[0], steps[5])
	}
	if o := steps[2].Options; o != "lowerdir=/sysroot/etc,upperdir=/run/overlay/etc/upper,workdir=/run/overlay/etc/work" {
		t.Errorf("overlay options %q", o)
	}
	binds := steps[6:]
	if len(binds) != len(PersistentPaths) {
		t.Fatalf("%d bind steps for %d persistent paths", len(binds), len(PersistentPaths))
	}
	ssh := binds[0]
	if ssh.Source != "/sysroot/usr/local/.state/etc-ssh.bind" || ssh.Target != "/sysroot/etc/ssh" || ssh.Options != "bind" || ssh.SeedFrom != "/sysroot/etc/ssh" {
		t.Errorf("bind step %+v", ssh)
	}
}

// TestEarlyStagesWriteBelowSysroot: the initramfs stages of the image's and
// the user's cloud-configs apply to the new root, not to the initramfs.
func TestEarlyStagesWriteBelowSysroot(t *testing.T) {
	sysroot := t.TempDir()
	os.MkdirAll(filepath.Join(sysroot, "oem"), 0o755)
	cfg := "#cloud-config\nstages:\n  initramfs:\n    - files:\n        - path: /etc/from-initramfs\n          content: yes\n          permissions: 0644\n  rootfs.after:\n    - directories:\n        - path: /var/lib/early\n"
	if err := os.WriteFile(filepath.Join(sysroot, "oem", "90_custom.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	RunEarlyStages(context.Background(), sysroot, &log)
	if got, err := os.ReadFile(filepath.Join(sysroot, "etc/from-initramfs")); err != nil || string(got) != "yes" {
		t.Errorf("initramfs stage file: %q, %v (log: %s)", got, err, log.String())
	}
	if st, err := os.Stat(filepath.Join(sysroot, "var/lib/early")); err != nil || !st.IsDir() {
		t.Errorf("rootfs.after directory: %v", err)
	}
}
