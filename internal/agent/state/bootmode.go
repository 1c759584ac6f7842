// Package state tells how the running system was booted, from the kernel
// command line and the sentinels the boot-time mounter leaves in /run/cos.
package state

import (
	"strings"
)

// BootMode is one of the upstream Kairos boot values.
type BootMode string

// Boot modes, as `kairos-agent state` reports them.
const (
	ActiveBoot   BootMode = "active_boot"
	PassiveBoot  BootMode = "passive_boot"
	RecoveryBoot BootMode = "recovery_boot"
	LiveCDBoot   BootMode = "livecd_boot"
	UnknownBoot  BootMode = "unknown"
)

// DetectBootMode reads the boot mode from kernel command line tokens.
func DetectBootMode(cmdline string) BootMode {
	fields := strings.Fields(cmdline)
	has := func(tok string) bool {
		for _, f := range fields {
			if f == tok || strings.HasPrefix(f, tok) {
				return true
			}
		}
		return false
	}
	switch {
	case has("rd.cos.disable") || has("root=live:") || has("netboot"):
		return LiveCDBoot
	case has("root=LABEL=COS_ACTIVE") || has("cos-img/filename=/cOS/active.img"):
		return ActiveBoot
	case has("root=LABEL=COS_PASSIVE") || has("cos-img/filename=/cOS/passive.img"):
		return PassiveBoot
	case has("root=LABEL=COS_SYSTEM") || has("root=LABEL=COS_RECOVERY") || has("cos-img/filename=/cOS/recovery"):
		return RecoveryBoot
	}
	return UnknownBoot
}

// UpgradeFailureSentinel is the /run/cos file of a boot that fell back to
// passive because the upgraded active did not come up.
const UpgradeFailureSentinel = "upgrade_failure"

// UpgradeFailed says whether grub's boot assessment added upgrade_failure.
func UpgradeFailed(cmdline string) bool {
	for _, f := range strings.Fields(cmdline) {
		if f == "upgrade_failure" {
			return true
		}
	}
	return false
}

// Sentinel is the /run/cos file name for a boot mode.
func (m BootMode) Sentinel() string {
	switch m {
	case ActiveBoot:
		return "active_mode"
	case PassiveBoot:
		return "passive_mode"
	case RecoveryBoot:
		return "recovery_mode"
	case LiveCDBoot:
		return "live_mode"
	}
	return ""
}
