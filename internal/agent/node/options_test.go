package node

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/stages"
)

func cfg(section string, kv map[string]any) cloudconfig.Merged {
	return cloudconfig.Merged{Values: map[string]any{section: kv}}
}

// The reset section widens what the flags ask for and never undoes them.
func TestResetFromConfig(t *testing.T) {
	for _, c := range []struct {
		name       string
		m          cloudconfig.Merged
		flags      ResetOptions
		flagReboot bool
		want       ResetOptions
		wantReboot bool
	}{
		{name: "no config"},
		{name: "flags kept", flags: ResetOptions{ResetOEM: true}, flagReboot: true, want: ResetOptions{ResetOEM: true}, wantReboot: true},
		{name: "reset-oem", m: cfg("reset", map[string]any{"reset-oem": true}), want: ResetOptions{ResetOEM: true}},
		{name: "reset-oem string", m: cfg("reset", map[string]any{"reset-oem": "true"}), want: ResetOptions{ResetOEM: true}},
		{name: "reset-oem false keeps flag", m: cfg("reset", map[string]any{"reset-oem": false}), flags: ResetOptions{ResetOEM: true}, want: ResetOptions{ResetOEM: true}},
		{name: "keep persistent", m: cfg("reset", map[string]any{"reset-persistent": false}), want: ResetOptions{KeepPersistent: true}},
		{name: "reset persistent", m: cfg("reset", map[string]any{"reset-persistent": true})},
		{name: "reboot", m: cfg("reset", map[string]any{"reboot": true}), wantReboot: true},
		{name: "reboot false keeps flag", m: cfg("reset", map[string]any{"reboot": false}), flagReboot: true, wantReboot: true},
		// The language's booleans: yes/on count; a value that is none is
		// left alone (its file is refused when loaded).
		{name: "yes is true", m: cfg("reset", map[string]any{"reset-oem": "yes"}), want: ResetOptions{ResetOEM: true}},
		{name: "odd value ignored", m: cfg("reset", map[string]any{"reboot": 1})},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, reboot := ResetFromConfig(c.m, c.flags, c.flagReboot)
			if o != c.want || reboot != c.wantReboot {
				t.Errorf("got %+v reboot %v, want %+v reboot %v", o, reboot, c.want, c.wantReboot)
			}
		})
	}
}

func TestUpgradeFromConfig(t *testing.T) {
	for _, c := range []struct {
		name       string
		m          cloudconfig.Merged
		flags      UpgradeOptions
		flagReboot bool
		want       UpgradeOptions
		wantReboot bool
	}{
		{name: "no config"},
		{name: "source from config", m: cfg("upgrade", map[string]any{"source": "oci:quay.io/kairos/debian:v2"}), want: UpgradeOptions{Source: "oci:quay.io/kairos/debian:v2"}},
		{name: "flag source wins", m: cfg("upgrade", map[string]any{"source": "oci:a"}), flags: UpgradeOptions{Source: "dir:/b"}, want: UpgradeOptions{Source: "dir:/b"}},
		{name: "recovery", m: cfg("upgrade", map[string]any{"recovery": true}), want: UpgradeOptions{Recovery: true}},
		{name: "recovery false keeps flag", m: cfg("upgrade", map[string]any{"recovery": false}), flags: UpgradeOptions{Recovery: true}, want: UpgradeOptions{Recovery: true}},
		{name: "reboot", m: cfg("upgrade", map[string]any{"reboot": "true"}), wantReboot: true},
		{name: "insecure is the flag's", flags: UpgradeOptions{AllowInsecure: true}, want: UpgradeOptions{AllowInsecure: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, reboot := UpgradeFromConfig(c.m, c.flags, c.flagReboot)
			if o != c.want || reboot != c.wantReboot {
				t.Errorf("got %+v reboot %v, want %+v reboot %v", o, reboot, c.want, c.wantReboot)
			}
		})
	}
}

// New takes the node's paths from the host and its boot mode from the
// command line.
func TestNewFromHost(t *testing.T) {
	h := host.New(t.TempDir())
	if err := os.MkdirAll(h.ByLabel, 0o755); err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(h.Root, "dev/vda4")
	os.WriteFile(dev, nil, 0o644)
	if err := os.Symlink("../../vda4", filepath.Join(h.ByLabel, "COS_STATE")); err != nil {
		t.Fatal(err)
	}
	n := New(h, "root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img", stages.Set{}, nil)
	if n.Mode != "passive_boot" || n.Mounts != h.Mounts || n.WorkDir != h.NodeWorkDir || n.LockFile != h.LockFile {
		t.Errorf("node %+v", n)
	}
	if got, err := n.Device("COS_STATE"); err != nil || got != dev {
		t.Errorf("COS_STATE: %q %v", got, err)
	}
	if _, err := n.Device("COS_OEM"); err == nil {
		t.Error("a missing label was found")
	}
}

func TestNewerReleases(t *testing.T) {
	tags := []string{"latest", "v1.0.0", "v1.2.0", "v1.10.0", "v1.2.0-rc1", "v0.9.0", "v2.0.0-beta", "main"}
	for _, c := range []struct {
		name    string
		current string
		all     bool
		want    []string
	}{
		{"newer than v1.2.0", "v1.2.0", false, []string{"v2.0.0-beta", "v1.10.0"}},
		{"all", "v1.2.0", true, []string{"v2.0.0-beta", "v1.10.0", "v1.2.0", "v1.2.0-rc1", "v1.0.0", "v0.9.0"}},
		{"unknown current version lists all versions", "", false, []string{"v2.0.0-beta", "v1.10.0", "v1.2.0", "v1.2.0-rc1", "v1.0.0", "v0.9.0"}},
		{"current not a version", "main", false, []string{"v2.0.0-beta", "v1.10.0", "v1.2.0", "v1.2.0-rc1", "v1.0.0", "v0.9.0"}},
		{"newest running", "v3.0.0", false, nil},
		{"prerelease current", "v1.2.0-rc1", false, []string{"v2.0.0-beta", "v1.10.0", "v1.2.0"}},
	} {
		if got := NewerReleases(tags, c.current, c.all); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestRunningVersion(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, content, want string
	}{
		{"quoted", "KAIROS_VERSION=\"v1.0.0\"\nKAIROS_FLAVOR=debian\n", "v1.0.0"},
		{"no version", "KAIROS_FLAVOR=debian\n", ""},
		{"missing", "", ""},
	} {
		p := filepath.Join(dir, c.name)
		if c.content != "" {
			if err := os.WriteFile(p, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := RunningVersion(p); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// The spool is $TMPDIR when set; else a private directory on the
// persistent partition, emptied of what an interrupted pull left.
func TestSpoolDir(t *testing.T) {
	for _, c := range []struct {
		name   string
		tmpdir string
		setup  func(t *testing.T, h *host.Host)
		want   func(h *host.Host) string
	}{
		{name: "TMPDIR", tmpdir: "/var/tmp/x", want: func(*host.Host) string { return "/var/tmp/x" }},
		{name: "persistent", want: func(h *host.Host) string { return h.Spool }},
		{name: "leftovers removed", setup: func(t *testing.T, h *host.Host) {
			os.MkdirAll(h.Spool, 0o700)
			os.WriteFile(filepath.Join(h.Spool, "kairos-spool-123"), []byte("x"), 0o600)
			os.WriteFile(filepath.Join(h.Spool, "other"), []byte("x"), 0o600)
		}, want: func(h *host.Host) string { return h.Spool }},
		{name: "cannot be made", setup: func(t *testing.T, h *host.Host) {
			// /usr/local/.kairos is a file: no spool under it.
			os.MkdirAll(filepath.Dir(filepath.Dir(h.Spool)), 0o755)
			os.WriteFile(filepath.Dir(h.Spool), nil, 0o644)
		}, want: func(*host.Host) string { return "" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := host.New(t.TempDir())
			h.Getenv = func(k string) string {
				if k == "TMPDIR" {
					return c.tmpdir
				}
				return ""
			}
			if c.setup != nil {
				c.setup(t, h)
			}
			got := SpoolDir(h)
			if want := c.want(h); got != want {
				t.Fatalf("SpoolDir = %q, want %q", got, want)
			}
			if got != h.Spool {
				return
			}
			st, err := os.Stat(got)
			if err != nil || st.Mode().Perm() != 0o700 {
				t.Errorf("spool %v %v: want a private directory", st, err)
			}
			if _, err := os.Stat(filepath.Join(got, "kairos-spool-123")); !os.IsNotExist(err) {
				t.Errorf("a leftover spool file stayed: %v", err)
			}
			if c.name == "leftovers removed" {
				if _, err := os.Stat(filepath.Join(got, "other")); err != nil {
					t.Errorf("a file that is not a spool was removed: %v", err)
				}
			}
		})
	}
}

func TestNewestImage(t *testing.T) {
	core := map[string]string{"KAIROS_FLAVOR_RELEASE": "bookworm", "KAIROS_VARIANT": "core", "KAIROS_TARGETARCH": "amd64", "KAIROS_MODEL": "generic", "KAIROS_VERSION": "v1.2.0"}
	std := map[string]string{"KAIROS_FLAVOR_RELEASE": "bookworm", "KAIROS_VARIANT": "standard", "KAIROS_TARGETARCH": "amd64", "KAIROS_MODEL": "generic", "KAIROS_VERSION": "v1.2.0",
		"KAIROS_SOFTWARE_VERSION_PREFIX": "k3s", "KAIROS_SOFTWARE_VERSION": "v1.31.2+k3s1"}
	pre := map[string]string{"KAIROS_FLAVOR_RELEASE": "bookworm", "KAIROS_VARIANT": "core", "KAIROS_TARGETARCH": "amd64", "KAIROS_MODEL": "generic", "KAIROS_VERSION": "v1.2.0-rc1"}
	tags := []string{
		"latest", "v9.0.0",
		"bookworm-core-amd64-generic-v1.1.0", "bookworm-core-amd64-generic-v1.2.0",
		"bookworm-core-amd64-generic-v1.10.0", "bookworm-core-amd64-generic-v1.11.0-rc1",
		"bookworm-core-arm64-generic-v5.0.0", "bookworm-core-amd64-rpi4-v5.0.0", "noble-core-amd64-generic-v5.0.0",
		"bookworm-core-amd64-generic-main",
		"bookworm-standard-amd64-generic-v1.4.0-k3sv1.31.9-k3s1", "bookworm-standard-amd64-generic-v1.4.0-k3sv1.31.10-k3s1",
		"bookworm-standard-amd64-generic-v1.5.0-k3sv1.32.0-k3s1", "bookworm-standard-amd64-generic-v7.0.0",
		"bookworm-standard-amd64-generic-v1.6.0-rc1-k3sv1.31.10-k3s1",
	}
	for _, c := range []struct {
		name string
		rel  map[string]string
		tags []string
		want string
	}{
		{"core: newest release of its line, no pre-release", core, tags, "bookworm-core-amd64-generic-v1.10.0"},
		{"standard: its Kubernetes minor, the newest patch", std, tags, "bookworm-standard-amd64-generic-v1.4.0-k3sv1.31.10-k3s1"},
		{"running the newest", core, tags[:4], ""},
		{"a pre-release node takes pre-releases", pre, tags, "bookworm-core-amd64-generic-v1.11.0-rc1"},
	} {
		if got := NewestImage(c.rel, c.tags); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}
