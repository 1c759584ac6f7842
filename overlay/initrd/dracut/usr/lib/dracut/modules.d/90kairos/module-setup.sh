#!/bin/bash
# dracut module: puts the Kairos boot-time mounter (kairos-agent mount) into
# the initramfs and runs it before switch-root.

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
    inst_multiple -o mount umount losetup findmnt blkid
    inst_hook pre-pivot 50 "$moddir/kairos-mount.sh"
}
