// Package install puts Kairos on a disk: the contract's GPT layout
// (disklayout), grub for UEFI and BIOS, the active, passive and recovery
// images, and the user's cloud-config, with the install stages around it.
// Planning (Plan) reads and checks everything and writes nothing, so a
// wrong disk or a disk too small is refused before it is touched; Run
// executes a plan.
package install

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos/internal/bytesize"
	"github.com/kairos-io/kairos/internal/cloudconfig"
	"github.com/kairos-io/kairos/internal/disklayout"
)

// Options are what the user asked for: the install section of the
// cloud-config, overridden by command-line flags.
type Options struct {
	// Device is the target disk, or "auto" (the first disk big enough that
	// is not the boot medium).
	Device string
	// Source is where active.img comes from: "" for the running live
	// system, oci:<ref> (a registry), dir:<path>, file:<oci tar>.
	Source string
	// Partitions override the contract's sizes (install.partitions).
	Partitions disklayout.Sizes
	// GrubEnv goes to COS_OEM's grubenv (install.grub_options), e.g.
	// extra_cmdline.
	GrubEnv map[string]string
	// Config is the user cloud-config copied to /oem/90_custom.yaml.
	Config []byte
	// Reboot or Poweroff when done.
	Reboot, Poweroff bool
	// AllowInsecure allows plain-HTTP registries for Source.
	AllowInsecure bool
}

// FromConfig reads the install section of a merged cloud-config.
func FromConfig(m cloudconfig.Merged) (Options, error) {
	o := Options{Partitions: disklayout.Sizes{}, GrubEnv: map[string]string{}}
	get := func(k string) (any, bool) { return m.Get("install." + k) }
	if v, ok := get("device"); ok {
		o.Device = fmt.Sprint(v)
	}
	if v, ok := get("source"); ok {
		o.Source = fmt.Sprint(v)
	}
	var err error
	if o.Reboot, err = boolKey(get, "reboot"); err != nil {
		return o, err
	}
	if o.Poweroff, err = boolKey(get, "poweroff"); err != nil {
		return o, err
	}
	if v, ok := get("partitions"); ok {
		parts, ok := v.(map[string]any)
		if !ok {
			return o, fmt.Errorf("install.partitions: a mapping of partition names is expected")
		}
		for name, p := range parts {
			pm, ok := p.(map[string]any)
			if !ok {
				return o, fmt.Errorf("install.partitions.%s: a mapping with size is expected", name)
			}
			size, err := partitionSize(pm["size"])
			if err != nil {
				return o, fmt.Errorf("install.partitions.%s.size: %w", name, err)
			}
			o.Partitions[name] = size
		}
	}
	if v, ok := get("grub_options"); ok {
		opts, ok := v.(map[string]any)
		if !ok {
			return o, fmt.Errorf("install.grub_options: a mapping of grub variables is expected")
		}
		for k, val := range opts {
			o.GrubEnv[k] = fmt.Sprint(val)
		}
	}
	return o, nil
}

// Auto says whether the config asks for an unattended install.
func Auto(m cloudconfig.Merged) bool {
	v, _ := m.Get("install.auto")
	b, _ := asBool(v)
	return b
}

func boolKey(get func(string) (any, bool), k string) (bool, error) {
	v, ok := get(k)
	if !ok {
		return false, nil
	}
	b, ok := asBool(v)
	if !ok {
		return false, fmt.Errorf("install.%s: %v is not true or false", k, v)
	}
	return b, nil
}

func asBool(v any) (bool, bool) {
	switch b := v.(type) {
	case bool:
		return b, true
	case string:
		p, err := strconv.ParseBool(strings.TrimSpace(b))
		return p, err == nil
	}
	return false, false
}

// partitionSize reads a size: a bare number is MiB, as upstream; strings
// take units ("512MiB", "4G").
func partitionSize(v any) (int64, error) {
	switch s := v.(type) {
	case int:
		return int64(s) * disklayout.MiB, nil
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n * disklayout.MiB, nil
		}
		return bytesize.Parse(s)
	case nil:
		return 0, fmt.Errorf("missing")
	}
	return 0, fmt.Errorf("%v is not a size", v)
}
