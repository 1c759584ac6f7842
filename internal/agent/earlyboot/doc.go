// Package earlyboot is the initramfs's first process: kairos-agent is the
// initramfs's /init, and for a boot of an installed system's image from
// COS_STATE or COS_RECOVERY (cos-img/filename= on the command line), or of
// live media (root=live:CDLABEL=... with an overlayfs root), it assembles
// the root itself and switches to it, without starting systemd and udev in
// the initramfs first. Every other boot (netboot, live options it does not
// carry out, rd.break, rd.kairos.dracut) is handed to dracut's systemd
// unchanged, before anything is mounted, as is a boot whose medium does
// not show up (Decide).
//
// Why: under dracut an installed boot spent most of its initramfs time
// bringing up and tearing down systemd, journald, sysusers and udev and
// running dracut's shell hooks, to do what takes a few steps here (see
// the README, "Boot time"). The steps are the ones the dracut path runs
// (internal/agent/mount: Loop, then Sysroot; for live media dmsquash-live's
// mounts at the same places: /run/initramfs/live, /run/rootfsbase, an
// overlay with its upper layer in /run); what udev did for them is
// done by a small coldplug (Coldplug): kernel modules for the devices
// present and appearing (their modalias, through modprobe), and the
// /dev/disk/by-label links of the file systems the mounts look for
// (blockdev.Probe reads their labels from the superblocks;
// loop devices of system images are named after the image file, as
// 90-kairos-images.rules names them under udev). The real root's udev
// takes over after switch-root, as after any initramfs.
package earlyboot
