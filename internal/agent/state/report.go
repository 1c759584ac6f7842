package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/release"
)

// Collect gathers what `kairos-agent state` reports on host h, in
// upstream's structure and key names: uuid, boot (the boot mode, from the
// kernel command line), kairos (the running release, init system, Secure
// Boot), each partition of the installed layout (persistent, oem, state,
// recovery, efi: found, name, label, filesystemlabel, mount_point,
// mounted, read_only, type, size_bytes, uuid), and upgrade_failure.
func Collect(h *host.Host) (map[string]any, error) {
	cmdline, err := h.KernelCmdline()
	if err != nil {
		return nil, err
	}
	values := map[string]any{
		"uuid":            machineUUID(h),
		"boot":            string(DetectBootMode(cmdline)),
		"upgrade_failure": UpgradeFailed(cmdline),
	}
	kairos := map[string]any{"version": "", "flavor": "", "flavor_release": "", "variant": "",
		"init": initSystem(h), "secureboot": secureBoot(h)}
	// Live media and images built without the file have no release: its
	// keys are then reported empty rather than failing the command.
	if data, err := os.ReadFile(h.Release); err == nil {
		rel, err := release.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", release.Path, err)
		}
		kairos["version"] = rel["KAIROS_VERSION"]
		kairos["flavor"] = rel["KAIROS_FLAVOR"]
		kairos["flavor_release"] = rel["KAIROS_FLAVOR_RELEASE"]
		kairos["variant"] = rel["KAIROS_VARIANT"]
	}
	values["kairos"] = kairos
	for name, p := range PartitionStates(h) {
		values[name] = p
	}
	return values, nil
}

// Get is the value at a dotted path ("persistent.mount_point",
// "kairos.version"); a leading "." is allowed, as upstream's queries
// start with one.
func Get(values map[string]any, key string) (any, error) {
	var cur any = values
	for _, part := range strings.Split(strings.TrimPrefix(key, "."), ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("unknown state key %q", key)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("unknown state key %q", key)
		}
	}
	return cur, nil
}

// machineUUID is the firmware's system UUID, else the machine id.
func machineUUID(h *host.Host) string {
	for _, p := range []string{filepath.Join(h.Sys, "class/dmi/id/product_uuid"), filepath.Join(h.Root, "etc/machine-id")} {
		if b, err := os.ReadFile(p); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

func initSystem(h *host.Host) string {
	if _, err := os.Stat(h.SystemdRun); err == nil {
		return "systemd"
	}
	if _, err := os.Stat(filepath.Join(h.Root, "sbin/openrc")); err == nil {
		return "openrc"
	}
	return ""
}

// secureBoot reads the UEFI SecureBoot variable: its value byte is 1 when
// the firmware enforces Secure Boot.
func secureBoot(h *host.Host) bool {
	b, err := os.ReadFile(filepath.Join(h.Sys, "firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"))
	return err == nil && len(b) == 5 && b[4] == 1
}
