package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/host"
)

func TestCollect(t *testing.T) {
	for _, c := range []struct {
		name    string
		cmdline string
		release string // "" for no release file
		labels  []string
		want    map[string]string // dotted path -> value as printed
		err     string
	}{
		{name: "live without release", cmdline: "root=live:CDLABEL=COS_LIVE",
			want: map[string]string{"boot": "livecd_boot", "upgrade_failure": "false", "kairos.version": "", "persistent.found": "false"}},
		{name: "passive after a failed upgrade", cmdline: "root=LABEL=COS_PASSIVE upgrade_failure",
			release: "KAIROS_VERSION=\"v3.1.0\"\nKAIROS_FLAVOR=debian\nKAIROS_FLAVOR_RELEASE=12\nKAIROS_VARIANT=core\n",
			labels:  []string{"COS_STATE", "COS_OEM"},
			want: map[string]string{"boot": "passive_boot", "upgrade_failure": "true", "kairos.version": "v3.1.0",
				"kairos.flavor": "debian", "kairos.flavor_release": "12", "kairos.variant": "core", ".state.mount_point": "/run/initramfs/cos-state",
				"oem.found": "true", "recovery.found": "false"}},
		{name: "bad release file", cmdline: "root=LABEL=COS_ACTIVE", release: "KAIROS_VERSION=\"unterminated\n", err: "/etc/kairos-release"},
		{name: "no command line", err: "kernel command line"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := host.New(t.TempDir())
			write := func(p, s string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.cmdline != "" {
				write(h.Cmdline, c.cmdline+"\n")
			}
			if c.release != "" {
				write(h.Release, c.release)
			}
			var mounts strings.Builder
			for i, l := range c.labels {
				dev := filepath.Join(h.Root, "dev", "vda"+string(rune('1'+i)))
				write(dev, "")
				os.MkdirAll(h.ByLabel, 0o755)
				if err := os.Symlink(dev, filepath.Join(h.ByLabel, l)); err != nil {
					t.Fatal(err)
				}
				if l == "COS_STATE" {
					mounts.WriteString(dev + " /run/initramfs/cos-state ext4 ro 0 0\n")
				}
			}
			write(h.Mounts, mounts.String())
			values, err := Collect(h)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one naming %s", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, w := range c.want {
				v, err := Get(values, k)
				if err != nil || fmt.Sprint(v) != w {
					t.Errorf("%s = %v (%v), want %q", k, v, err, w)
				}
			}
			if _, err := Get(values, "persistent.nope"); err == nil {
				t.Error("unknown key accepted")
			}
		})
	}
}
