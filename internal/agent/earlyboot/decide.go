package earlyboot

import (
	"path"
	"strings"

	"github.com/kairos-io/kairos/internal/agent/blockdev"
)

// Boot is the way the initramfs boots.
type Boot int

const (
	// Dracut: dracut's systemd boots as it was made to.
	Dracut Boot = iota
	// Installed: a system image from COS_STATE or COS_RECOVERY.
	Installed
	// Live: live media, the squashfs on a labelled medium.
	Live
)

// LiveMedium is where a live boot's root comes from: the squashfs at
// Dir/Image on the medium labelled Label.
type LiveMedium struct {
	Label, Dir, Image string
}

// Decide says which way a boot with this kernel command line goes, and why
// when it is dracut's. Installed systems and live media from a labelled
// medium with an overlayfs root take the fast path; network boots, live
// options this path does not carry out and anything that asks for
// dracut's own behaviour keep dracut.
func Decide(cmdline string) (Boot, LiveMedium, string) {
	installed, overlayfs := false, false
	var live *LiveMedium
	lm := LiveMedium{Dir: "LiveOS", Image: "squashfs.img"} // dracut's defaults
	for _, f := range strings.Fields(cmdline) {
		key, val, _ := strings.Cut(f, "=")
		switch {
		case key == "cos-img/filename":
			installed = true
		case key == "rd.kairos.dracut":
			return Dracut, LiveMedium{}, "rd.kairos.dracut asks for dracut"
		case strings.HasPrefix(key, "rd.break"), key == "rd.debug", key == "rd.systemd.unit",
			key == "rd.udev.log_level", key == "rd.udev.log-priority", key == "rd.shell" && f != "rd.shell=0":
			return Dracut, LiveMedium{}, f + " is dracut's"
		case key == "root" && strings.HasPrefix(val, "live:"):
			src := strings.TrimPrefix(val, "live:")
			label, ok := strings.CutPrefix(src, "CDLABEL=")
			if !ok {
				label, ok = strings.CutPrefix(src, "LABEL=")
			}
			if !ok || blockdev.LinkName(label) == "" {
				return Dracut, LiveMedium{}, "live root " + src + " is dracut's (network, or not a label)"
			}
			lm.Label = label
			live = &lm
		case key == "rd.live.dir":
			lm.Dir = val
		case key == "rd.live.squashimg":
			lm.Image = val
		case key == "rd.live.overlay.overlayfs":
			overlayfs = val == "" || val == "1" || val == "yes"
		case strings.HasPrefix(key, "rd.live."), key == "rd.writable.fsimg", key == "rd.neednet", key == "ip":
			return Dracut, LiveMedium{}, f + " is dracut's"
		}
	}
	switch {
	case installed && live == nil:
		return Installed, LiveMedium{}, ""
	case live != nil && !installed:
		if !overlayfs {
			return Dracut, LiveMedium{}, "a live root without rd.live.overlay.overlayfs is dracut's"
		}
		// Names from the command line stay below the medium.
		dir, image := path.Clean("/"+lm.Dir), path.Clean("/"+lm.Image)
		if strings.Contains(lm.Dir, "..") || strings.Contains(lm.Image, "..") || image == "/" {
			return Dracut, LiveMedium{}, "rd.live.dir or rd.live.squashimg leaves the medium"
		}
		lm.Dir, lm.Image = dir, strings.TrimPrefix(image, "/")
		return Live, lm, ""
	}
	return Dracut, LiveMedium{}, "not an installed-system or live-media boot"
}
