package install

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// Overrides are the install commands' flags, applied over the install
// section of the cloud-config.
type Overrides struct {
	Device, Source   string
	Reboot, Poweroff bool
	AllowInsecure    bool
}

// Apply lays the flags over o: a device or source given wins, reboot and
// poweroff are on when either asks. An install needs a disk: without one
// it is refused here, before anything is read from the disks.
func (f Overrides) Apply(o Options) (Options, error) {
	if f.Device != "" {
		o.Device = f.Device
	}
	if f.Source != "" {
		o.Source = f.Source
	}
	o.Reboot = o.Reboot || f.Reboot
	o.Poweroff = o.Poweroff || f.Poweroff
	o.AllowInsecure = f.AllowInsecure
	if o.Device == "" {
		return o, fmt.Errorf("no disk: set install.device in the cloud-config or pass --device (a disk, or auto)")
	}
	return o, nil
}

// UserConfig is what an install copies to /oem/90_custom.yaml: the merged
// user configs with their templates unrendered (the installed node renders
// them at each boot, with its own machine id), nothing when there are
// none.
func UserConfig(m cloudconfig.Merged) ([]byte, error) {
	values := m.Raw
	if values == nil { // a Merged made by hand
		values = m.Values
	}
	if len(values) == 0 {
		return nil, nil
	}
	out, err := yaml.Marshal(values)
	if err != nil {
		return nil, fmt.Errorf("encoding the cloud-config for the installed node: %w", err)
	}
	// yaml.v3 writes some block scalars (text starting with a blank line)
	// that it cannot read back: the node would boot without its config.
	// JSON is YAML too, and always reads back.
	var back map[string]any
	if yaml.Unmarshal(out, &back) != nil {
		if out, err = json.MarshalIndent(values, "", "  "); err != nil {
			return nil, fmt.Errorf("encoding the cloud-config for the installed node: %w", err)
		}
		out = append(out, '\n')
	}
	return append([]byte("#cloud-config\n"), out...), nil
}
