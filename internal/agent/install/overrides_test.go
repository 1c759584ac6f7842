package install

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

func TestOverridesApply(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Options
		f    Overrides
		want Options
		err  bool
	}{
		{name: "config only", cfg: Options{Device: "/dev/vda", Source: "oci:a", Reboot: true}, want: Options{Device: "/dev/vda", Source: "oci:a", Reboot: true}},
		{name: "flags win", cfg: Options{Device: "/dev/vda", Source: "oci:a"}, f: Overrides{Device: "auto", Source: "dir:/b"}, want: Options{Device: "auto", Source: "dir:/b"}},
		{name: "reboot and poweroff add up", cfg: Options{Device: "auto", Poweroff: true}, f: Overrides{Reboot: true}, want: Options{Device: "auto", Reboot: true, Poweroff: true}},
		{name: "insecure from the flag only", cfg: Options{Device: "auto", AllowInsecure: true}, want: Options{Device: "auto"}},
		{name: "insecure flag", cfg: Options{Device: "auto"}, f: Overrides{AllowInsecure: true}, want: Options{Device: "auto", AllowInsecure: true}},
		{name: "no disk", err: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.f.Apply(c.cfg)
			if c.err {
				if err == nil || !strings.HasPrefix(err.Error(), "no disk:") {
					t.Errorf("error %v, want no disk", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Device != c.want.Device || got.Source != c.want.Source || got.Reboot != c.want.Reboot ||
				got.Poweroff != c.want.Poweroff || got.AllowInsecure != c.want.AllowInsecure {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestUserConfig(t *testing.T) {
	for _, c := range []struct {
		values map[string]any
		want   string
	}{
		{nil, ""},
		{map[string]any{}, ""},
		{map[string]any{"k3s": map[string]any{"enabled": true}}, "#cloud-config\nk3s:\n    enabled: true\n"},
	} {
		got, err := UserConfig(cloudconfig.Merged{Values: c.values})
		if err != nil || string(got) != c.want {
			t.Errorf("UserConfig(%v) = %q, %v; want %q", c.values, got, err, c.want)
		}
	}
}

// What yaml.v3 cannot read back goes as JSON (YAML too): the installed
// node always gets its config.
func TestUserConfigRoundTrips(t *testing.T) {
	m := cloudconfig.Merged{Raw: map[string]any{"stages": map[string]any{"boot": []any{map[string]any{
		"files": []any{map[string]any{"path": "/etc/motd", "content": "\n  indented after a blank line\nmore\n"}}}}},
		"install": map[string]any{"auto": true}}}
	data, err := UserConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := yaml.Unmarshal(data, &back); err != nil || !strings.HasPrefix(string(data), "#cloud-config\n") {
		t.Fatalf("%v:\n%s", err, data)
	}
	p, diags := cloudconfig.Parse("90_custom.yaml", data)
	if diags.Err() != nil || !p.Config.Install.Auto || p.Config.Stages["boot"][0].Files[0].Content != "\n  indented after a blank line\nmore\n" {
		t.Errorf("%v %+v", diags.Err(), p.Config)
	}
}
