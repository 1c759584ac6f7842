package mount

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
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
	steps := SysrootPlan(b, "/sysroot", Layout{})
	var got []string
	for _, s := range steps[:7] {
		got = append(got, s.Target)
	}
	want := "/sysroot/oem /run/overlay /sysroot/etc /sysroot/var /sysroot/srv /sysroot/tmp /sysroot/usr/local"
	if strings.Join(got, " ") != want {
		t.Errorf("first mounts %v, want %s", got, want)
	}
	if steps[0].Label != "COS_OEM" || steps[6].Label != "COS_PERSISTENT" {
		t.Errorf("OEM %+v, persistent %+v", steps[0], steps[6])
	}
	if tmp := steps[5]; tmp.FSType != "tmpfs" || !strings.HasPrefix(tmp.Options, "mode=1777,") {
		t.Errorf("/tmp %+v, want a world-writable sticky tmpfs", tmp)
	}
	if o := steps[2].Options; o != "lowerdir=/sysroot/etc,upperdir=/run/overlay/etc/upper,workdir=/run/overlay/etc/work" {
		t.Errorf("overlay options %q", o)
	}
	binds := steps[7:]
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

// The node's layout, as upstream lets it be changed: cos-layout.env from
// the rootfs stage, install.bind_mounts/ephemeral_mounts, rd.cos.overlay.
func TestReadLayout(t *testing.T) {
	env := []byte(`# written by a rootfs step
PERSISTENT_STATE_PATHS="/etc/corpus /var/lib/corpus"
RW_PATHS='/var/cache/extra'
OVERLAY=tmpfs:40%
PERSISTENT_STATE_BIND="true"
VOLUMES="LABEL=X:/x"
CUSTOM_BIND_MOUNTS=relative/path
`)
	cfg := &cloudconfig.Config{Install: cloudconfig.Install{BindMounts: []string{"/var/lib/longhorn", "/etc/corpus"}, EphemeralMounts: []string{"/var/tmp/x"}}}
	l, errs := ReadLayout("root=LABEL=COS_ACTIVE rd.cos.overlay=tmpfs:1024", [][]byte{env}, []*cloudconfig.Config{cfg})
	if got := strings.Join(l.PersistentPaths, " "); got != "/var/lib/longhorn /etc/corpus /var/lib/corpus" {
		t.Errorf("persistent %q", got)
	}
	if got := strings.Join(l.EphemeralPaths, " "); got != "/var/tmp/x /var/cache/extra" {
		t.Errorf("ephemeral %q", got)
	}
	if l.OverlaySize != "40%" { // the file wins over the command line
		t.Errorf("overlay size %q", l.OverlaySize)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "VOLUMES") || !strings.Contains(errs[1].Error(), `"relative/path"`) {
		t.Errorf("errors %v", errs)
	}
	if l, _ := ReadLayout("rd.cos.overlay=tmpfs:1024", nil, nil); l.OverlaySize != "1024m" {
		t.Errorf("MiB size %q", l.OverlaySize)
	}
	if _, errs := ReadLayout("rd.cos.overlay=LABEL=OVL", nil, nil); len(errs) != 1 {
		t.Errorf("block overlay accepted: %v", errs)
	}

	b, _ := ParseBootImage("root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img")
	steps := SysrootPlan(b, "/sysroot", Layout{PersistentPaths: []string{"/var/lib/corpus", "/etc/ssh"}, EphemeralPaths: []string{"/var/cache/extra"}, OverlaySize: "40%"})
	var targets []string
	for _, s := range steps {
		targets = append(targets, s.Target)
	}
	all := strings.Join(targets, " ")
	if !strings.Contains(steps[1].Options, "size=40%") || !strings.Contains(all, "/sysroot/var/cache/extra") ||
		!strings.HasSuffix(all, "/sysroot/var/lib/corpus") || strings.Count(all, "/sysroot/etc/ssh ") != 1 {
		t.Errorf("plan with layout: %s (tmpfs %q)", all, steps[1].Options)
	}
}

// The corpus' layout config, on a sysroot: its rootfs stage writes the
// layout file, and the layout the mounter then reads has its paths.
func TestLayoutFromRootfsStage(t *testing.T) {
	sysroot, run := t.TempDir(), t.TempDir()
	data, err := os.ReadFile("../../../tests/testdata/cloud-configs/08_layout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(sysroot, "oem"), 0o755)
	if err := os.WriteFile(filepath.Join(sysroot, "oem", "90_custom.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sources := runStage(context.Background(), sysroot, run, "rootfs", &log)
	// The file went to the initramfs's /run (the new root is read-only).
	if _, err := os.Stat(filepath.Join(run, "cos/cos-layout.env")); err != nil {
		t.Errorf("layout file not in the run directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(sysroot, "run/cos/cos-layout.env")); err == nil {
		t.Error("layout file written below the (read-only) new root")
	}
	l := nodeLayout("rd.cos.overlay=tmpfs:10%", sysroot, run, sources, &log)
	if got := strings.Join(l.PersistentPaths, " "); got != "/var/lib/longhorn /etc/corpus /var/lib/corpus" || l.OverlaySize != "30%" ||
		strings.Join(l.EphemeralPaths, " ") != "/var/cache/corpus" {
		t.Errorf("layout %+v (log: %s)", l, log.String())
	}
}
