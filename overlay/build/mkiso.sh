#!/bin/sh
# Assembles the live ISO from the image mounted at /rootfs. Usage:
#   mkiso.sh <artifact name> <output dir>
# Layout: /rootfs.squashfs, /boot/kernel, /boot/initrd, /boot/grub (BIOS), and
# an EFI System Partition image that is both the UEFI El Torito entry and an
# appended GPT partition, so one file boots as CD and as USB stick.
set -eu
name=$1
out=$2
here=$(dirname "$0")
assets=/rootfs/usr/lib/kairos/boot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for f in "$assets/BOOTX64.EFI" "$assets/eltorito.img" "$assets/boot_hybrid.img"; do
    [ -f "$f" ] || { echo "mkiso: $f missing: the image has no boot assets" >&2; exit 1; }
done
mkdir -p "$work/iso/boot/grub" "$work/iso/EFI/BOOT"

echo "mkiso: squashfs"
mksquashfs /rootfs "$work/iso/rootfs.squashfs" -comp zstd -b 1M -noappend -no-progress -quiet
cp -L /rootfs/boot/vmlinuz "$work/iso/boot/kernel"
cp -L /rootfs/boot/initrd "$work/iso/boot/initrd"
cp "$assets/eltorito.img" "$work/iso/boot/grub/eltorito.img"
cp "$here/../iso/boot/grub/grub.cfg" "$work/iso/boot/grub/grub.cfg"
# UEFI grub looks for its config next to itself; depending on the firmware that
# is the ESP image or the ISO file system, so both carry it.
cp "$here/../iso/EFI/BOOT/grub.cfg" "$work/iso/EFI/BOOT/grub.cfg"

echo "mkiso: EFI system partition"
efi_kib=$(( ($(stat -c %s "$assets/BOOTX64.EFI") / 1024) + 1024 ))
mkfs.vfat -C -n COS_GRUB "$work/iso/boot/uefi.img" "$efi_kib" >/dev/null
mmd -i "$work/iso/boot/uefi.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/iso/boot/uefi.img" "$assets/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$work/iso/boot/uefi.img" "$here/../iso/EFI/BOOT/grub.cfg" ::/EFI/BOOT/grub.cfg

echo "mkiso: iso9660"
xorriso -as mkisofs -iso-level 3 -full-iso9660-filenames -rational-rock -joliet \
    -volid COS_LIVE \
    -eltorito-boot boot/grub/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
    --grub2-boot-info --grub2-mbr "$assets/boot_hybrid.img" \
    -eltorito-alt-boot --efi-boot boot/uefi.img -efi-boot-part --efi-boot-image \
    --protective-msdos-label \
    -output "$out/$name.iso" "$work/iso" 2>&1 | grep -v '^xorriso : UPDATE' || true
[ -s "$out/$name.iso" ] || { echo "mkiso: xorriso wrote no ISO" >&2; exit 1; }
(cd "$out" && sha256sum "$name.iso" > "$name.iso.sha256")
echo "mkiso: wrote $name.iso ($(du -h "$out/$name.iso" | cut -f1))"
