package state

import (
	"fmt"
	"os"

	"github.com/kairos-io/kairos/internal/agent/host"
	"github.com/kairos-io/kairos/internal/release"
)

// Collect gathers every value `kairos-agent state` reports on host h: the
// boot mode and upgrade failure from the kernel command line, the running
// release from its release file, and the partitions of the installed
// layout that are present.
func Collect(h *host.Host) (map[string]string, error) {
	cmdline, err := h.KernelCmdline()
	if err != nil {
		return nil, err
	}
	values := PartitionValues(h.ByLabel, h.Mounts)
	values["boot"] = string(DetectBootMode(cmdline))
	values["upgrade_failure"] = fmt.Sprint(UpgradeFailed(cmdline))
	// Live media and images built without the file have no release: its
	// keys are then reported empty rather than failing the command.
	if data, err := os.ReadFile(h.Release); err == nil {
		rel, err := release.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", release.Path, err)
		}
		values["kairos.version"] = rel["KAIROS_VERSION"]
		values["kairos.flavor"] = rel["KAIROS_FLAVOR"]
		values["kairos.flavor_release"] = rel["KAIROS_FLAVOR_RELEASE"]
		values["kairos.variant"] = rel["KAIROS_VARIANT"]
	}
	return values, nil
}

// ReportKeys are the keys `kairos-agent state` prints, in its order: the
// fixed ones always (scripts read them by position too), then the
// device and mount point of each partition found.
func ReportKeys(values map[string]string) []string {
	keys := []string{"boot", "upgrade_failure", "kairos.version", "kairos.flavor", "kairos.flavor_release", "kairos.variant"}
	for _, p := range Partitions {
		if _, ok := values[p.Name+".device"]; ok {
			keys = append(keys, p.Name+".device", p.Name+".mountpoint")
		}
	}
	return keys
}
