#!/bin/bash
# dracut module: puts the Kairos boot-time mounter (kairos-agent mount) into
# the initramfs. An installed system boots through the agent as /init (the
# fast path); under dracut's systemd (live media, netboot, rd.kairos.dracut)
# kairos-loop.service attaches an installed system's boot image before the
# root is mounted, the pre-pivot hook assembles the rest.

check() {
    require_binaries kairos-agent || return 1
    return 0
}

depends() {
    echo rootfs-block
    return 0
}

install() {
    inst_multiple kairos-agent
    inst_multiple mount umount losetup cp chroot
    inst_multiple -o findmnt blkid
    # The rootfs stage's layout steps (upstream's "grow COS_PERSISTENT"):
    # the agent grows and makes file systems with the node's own tools.
    inst_multiple -o e2fsck resize2fs mkfs.ext2 mkfs.ext3 mkfs.ext4 mkfs.xfs mkfs.vfat mkswap
    inst_hook pre-pivot 50 "$moddir/kairos-mount.sh"
    inst_rules "$moddir/90-kairos-images.rules"
    if dracut_module_included "systemd"; then
        inst_simple "$moddir/kairos-loop.service" "$systemdsystemunitdir/kairos-loop.service"
        $SYSTEMCTL -q --root "$initdir" add-wants initrd.target kairos-loop.service
        # The agent is /init: an installed system's boot assembles its
        # root without starting systemd and udev here first; every other
        # boot is handed to dracut's systemd (/usr/lib/systemd/systemd),
        # which was /init (internal/agent/earlyboot). modprobe loads the
        # drivers of the devices present.
        inst_multiple modprobe
        ln -sfn usr/bin/kairos-agent "$initdir/init"
    fi
    # udev's hardware database (01systemd-udevd puts it in, 13 MB of the
    # initrd, a quarter of a second for the kernel to unpack under
    # emulation): names and keyboard remaps for the booted system's udev.
    # No step of a boot reads it here; udev without it adds no database
    # properties. Modules install in order, so systemd-udevd's is done.
    rm -f "$initdir$udevdir/hwdb.bin" "$initdir/etc/udev/hwdb.bin"
}
