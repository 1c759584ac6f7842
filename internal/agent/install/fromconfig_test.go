package install

import (
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/disklayout"
)

// The install section through the language's types: sizes in MiB or with
// units, the top level's grub_options under install's.
func TestFromConfig(t *testing.T) {
	m := cloudconfig.Merged{Values: map[string]any{
		"grub_options": map[string]any{"extra_cmdline": "top", "default_fallback": "1"},
		"install": map[string]any{"device": "/dev/vda", "reboot": "yes", "source": "oci:x",
			"partitions":           map[string]any{"persistent": map[string]any{"size": 4096}, "oem": map[string]any{"size": "128MiB"}},
			"grub_options":         map[string]any{"extra_cmdline": "install"},
			"encrypted_partitions": []any{"COS_PERSISTENT", "COS_OEM"},
			"encryption":           map[string]any{"recovery_passphrase": "correct horse battery"}},
	}}
	o, err := FromConfig(m)
	if err != nil {
		t.Fatal(err)
	}
	if o.Device != "/dev/vda" || !o.Reboot || o.Source != "oci:x" || o.Partitions["persistent"] != 4096*disklayout.MiB || o.Partitions["oem"] != 128*disklayout.MiB {
		t.Errorf("options %+v", o)
	}
	if strings.Join(o.Encrypt, ",") != "COS_PERSISTENT,COS_OEM" || string(o.RecoveryPassphrase) != "correct horse battery" {
		t.Errorf("encryption: %v, %d-byte passphrase", o.Encrypt, len(o.RecoveryPassphrase))
	}
	if o.GrubEnv["extra_cmdline"] != "install" || o.GrubEnv["default_fallback"] != "1" {
		t.Errorf("grub env %v", o.GrubEnv)
	}
}
