package earlyboot

import "strings"

// Decide says whether a boot with this kernel command line takes the fast
// path, and why not when it does not. Only installed-system boots do;
// anything that asks for dracut's own behaviour keeps it.
func Decide(cmdline string) (fast bool, why string) {
	installed := false
	for _, f := range strings.Fields(cmdline) {
		key, _, _ := strings.Cut(f, "=")
		switch {
		case key == "cos-img/filename":
			installed = true
		case key == "rd.kairos.dracut":
			return false, "rd.kairos.dracut asks for dracut"
		case strings.HasPrefix(key, "rd.break"), key == "rd.debug", key == "rd.systemd.unit",
			key == "rd.udev.log_level", key == "rd.udev.log-priority", key == "rd.shell" && f != "rd.shell=0":
			return false, f + " is dracut's"
		case key == "rd.cos.disable", key == "rd.live.image", strings.HasPrefix(f, "root=live:"):
			return false, "live media boot"
		}
	}
	if !installed {
		return false, "not an installed-system boot (no cos-img/filename=)"
	}
	return true, ""
}
