package mount

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlag is what one of mount(8)'s generic options does to the flags
// of mount(2).
type mountFlag struct{ set, clear uintptr }

// mountFlags are the generic options the plans use; every other option
// belongs to the file system (tmpfs size=, overlay lowerdir=) and goes in
// the data string, as mount(8) passes it.
var mountFlags = map[string]mountFlag{
	"ro":          {set: unix.MS_RDONLY},
	"rw":          {clear: unix.MS_RDONLY},
	"noatime":     {set: unix.MS_NOATIME},
	"relatime":    {set: unix.MS_RELATIME},
	"strictatime": {set: unix.MS_STRICTATIME},
	"nosuid":      {set: unix.MS_NOSUID},
	"nodev":       {set: unix.MS_NODEV},
	"noexec":      {set: unix.MS_NOEXEC},
	"sync":        {set: unix.MS_SYNCHRONOUS},
	"bind":        {set: unix.MS_BIND},
	"rbind":       {set: unix.MS_BIND | unix.MS_REC},
}

// mountOptions splits a plan's options into mount(2)'s flags and data.
func mountOptions(options string) (flags uintptr, data string) {
	var rest []string
	for _, o := range strings.Split(options, ",") {
		if o == "" || o == "defaults" {
			continue
		}
		if f, ok := mountFlags[o]; ok {
			flags = flags&^f.clear | f.set
			continue
		}
		rest = append(rest, o)
	}
	return flags, strings.Join(rest, ",")
}

// Syscall mounts with mount(2) itself rather than by running
// mount(8): a boot makes about thirty mounts in the initramfs (the
// persistent binds above all), and under emulation or on a small board
// each run of mount(8) costs more than the mount. The steps name their
// file system type, so nothing needs probing.
func Syscall(source, target, fstype, options string) error {
	flags, data := mountOptions(options)
	if fstype == "none" {
		fstype = ""
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s (type %q, options %q): %w", source, target, fstype, options, err)
	}
	return nil
}
