#!/bin/sh
# Writes artifacts of the image mounted read-only at /rootfs. Usage:
#   mkartifacts.sh <artifact name> <output dir> <kind>...
# kinds:
#   iso       hybrid live ISO: /rootfs.squashfs, /boot/kernel, /boot/initrd,
#             BIOS El Torito grub and an EFI System Partition image that is both
#             the UEFI El Torito entry and an appended GPT partition, so one file
#             boots as CD and as USB stick
#   recovery  <name>.squashfs, the whole root file system
#   netboot   <name>-kernel, <name>-initrd, <name>.squashfs, <name>.ipxe
# Environment: SQUASHFS_COMP (mksquashfs -comp), EFI_NAME (BOOTX64.EFI...),
# NETBOOT_URL (default base URL of the iPXE script).
# Every file gets <file>.sha256.
set -eu
name=$1
out=$2
shift 2
here=$(dirname "$0")
assets=/rootfs/usr/lib/kairos/boot
comp=${SQUASHFS_COMP:-zstd}
efi_name=${EFI_NAME:-BOOTX64.EFI}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { echo "kairos-artifacts: $*"; }
die() { echo "kairos-artifacts: error: $*" >&2; exit 1; }
checksum() { (cd "$out" && sha256sum "$1" > "$1.sha256"); say "wrote $1 ($(du -h "$out/$1" | cut -f1))"; }

[ -e /rootfs/boot/vmlinuz ] || die "/boot/vmlinuz missing: the image has no kernel"
[ -e /rootfs/boot/initrd ] || die "/boot/initrd missing: the image has no initrd"

# One squashfs serves every kind; it is made on first use.
squashfs="$work/rootfs.squashfs"
make_squashfs() {
    [ -f "$squashfs" ] && return
    say "squashfs ($comp, 1 MiB blocks)"
    mksquashfs /rootfs "$squashfs" -comp "$comp" -b 1M -noappend -no-progress -quiet
}

iso() {
    for f in "$assets/$efi_name" "$assets/eltorito.img" "$assets/boot_hybrid.img"; do
        [ -f "$f" ] || die "$f missing: the image has no BIOS+UEFI boot assets"
    done
    make_squashfs
    tree="$work/iso"
    mkdir -p "$tree/boot/grub" "$tree/EFI/BOOT"
    ln "$squashfs" "$tree/rootfs.squashfs"
    cp -L /rootfs/boot/vmlinuz "$tree/boot/kernel"
    cp -L /rootfs/boot/initrd "$tree/boot/initrd"
    cp "$assets/eltorito.img" "$tree/boot/grub/eltorito.img"
    cp "$here/../iso/boot/grub/grub.cfg" "$tree/boot/grub/grub.cfg"
    # UEFI grub looks for its config next to itself; depending on the firmware
    # that is the ESP image or the ISO file system, so both carry it.
    cp "$here/../iso/EFI/BOOT/grub.cfg" "$tree/EFI/BOOT/grub.cfg"

    say "EFI system partition"
    efi_kib=$(( ($(stat -c %s "$assets/$efi_name") / 1024) + 1024 ))
    mkfs.vfat -C -n COS_GRUB "$tree/boot/uefi.img" "$efi_kib" >/dev/null
    mmd -i "$tree/boot/uefi.img" ::/EFI ::/EFI/BOOT
    mcopy -i "$tree/boot/uefi.img" "$assets/$efi_name" "::/EFI/BOOT/$efi_name"
    mcopy -i "$tree/boot/uefi.img" "$here/../iso/EFI/BOOT/grub.cfg" ::/EFI/BOOT/grub.cfg

    say "iso9660"
    xorriso -as mkisofs -iso-level 3 -full-iso9660-filenames -rational-rock -joliet \
        -volid COS_LIVE \
        -eltorito-boot boot/grub/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
        --grub2-boot-info --grub2-mbr "$assets/boot_hybrid.img" \
        -eltorito-alt-boot --efi-boot boot/uefi.img -efi-boot-part --efi-boot-image \
        --protective-msdos-label \
        -output "$out/$name.iso" "$tree" 2>&1 | grep -v '^xorriso : UPDATE' || true
    [ -s "$out/$name.iso" ] || die "xorriso wrote no ISO"
    checksum "$name.iso"
}

recovery() {
    make_squashfs
    [ -f "$out/$name.squashfs" ] || { cp "$squashfs" "$out/$name.squashfs"; checksum "$name.squashfs"; }
}

netboot() {
    recovery
    cp -L /rootfs/boot/vmlinuz "$out/$name-kernel"
    checksum "$name-kernel"
    cp -L /rootfs/boot/initrd "$out/$name-initrd"
    checksum "$name-initrd"
    # iPXE resolves ${base-url} at boot, so the same script serves any
    # server; NETBOOT_URL only sets its default.
    {
        echo '#!ipxe'
        if [ -n "${NETBOOT_URL:-}" ]; then
            echo "isset \${base-url} || set base-url ${NETBOOT_URL}"
        else
            echo 'isset ${base-url} || goto no_url'
        fi
        echo "kernel \${base-url}/$name-kernel root=live:\${base-url}/$name.squashfs initrd=$name-initrd rd.neednet=1 ip=dhcp rd.cos.disable netboot install-mode rd.live.overlay.overlayfs console=ttyS0"
        echo "initrd \${base-url}/$name-initrd"
        echo 'boot'
        if [ -z "${NETBOOT_URL:-}" ]; then
            echo ':no_url'
            echo 'echo Set base-url to the HTTP directory holding the netboot files, e.g. "set base-url http://10.0.2.2:8080", then chain this script again.'
            echo 'shell'
        fi
    } > "$out/$name.ipxe"
    checksum "$name.ipxe"
}

[ $# -gt 0 ] || die "no artifact kind given (iso, recovery, netboot)"
for kind in "$@"; do
    case "$kind" in
    iso|recovery|netboot) "$kind" ;;
    *) die "unknown artifact kind $kind (valid: iso, recovery, netboot)" ;;
    esac
done
