#!/usr/bin/env bash
# Plain Debian for the boot benchmark (main.go): the cached base image,
# with the same kernel package from the same mirror as the Kairos image,
# Debian's own initramfs (initramfs-tools), systemd-networkd with Kairos'
# DHCP .network, and grub on the ESP; no Kairos part. Writes a GPT disk:
#
#   plain-debian.sh <OCI layout dir> <manifest digest> <work dir> <disk>
set -euo pipefail
layout=$1 digest=$2 work=$3 disk=$4
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
rootfs=$work/rootfs
rm -rf "$work" && mkdir -p "$work"

# The base image's one layer (kairos base writes an uncompressed OCI layer).
manifest=$layout/blobs/${digest/://}
layer=$(grep -o '"layers":\[{[^}]*"digest":"sha256:[0-9a-f]*"' "$manifest" | grep -o 'sha256:[0-9a-f]*' | head -n1)
[ -n "$layer" ] || { echo "no layer in $manifest" >&2; exit 1; }
mkdir -p "$rootfs"
tar -xf "$layout/blobs/${layer/://}" -C "$rootfs"

cleanup() { for m in dev/pts dev proc sys; do umount "$rootfs/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
for m in proc sys dev dev/pts; do mkdir -p "$rootfs/$m"; mount --bind "/$m" "$rootfs/$m"; done
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
chroot "$rootfs" /bin/sh -ec '
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends linux-image-amd64 systemd-sysv udev dbus kmod initramfs-tools \
    iproute2 login passwd grub-efi-amd64-bin >/dev/null
echo root:bench-Boot | chpasswd
echo plain-debian > /etc/hostname
echo "LABEL=debroot / ext4 defaults 0 1" > /etc/fstab
systemctl enable systemd-networkd >/dev/null 2>&1
apt-get clean
'
cp "$here/overlay/rootfs/etc/systemd/network/20-dhcp.network" "$rootfs/etc/systemd/network/"
cleanup

# ESP: grub made from the image's own grub-efi-amd64-bin (this machine's
# grub-mkimage, the image's modules), the kernel and the initrd.
kernel=$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -n1)
initrd=$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -n1)
esp=$work/esp.img
rm -f "$esp"
mkfs.vfat -C -n ESP "$esp" $((256 * 1024)) >/dev/null
grubdir=$rootfs/usr/lib/grub/x86_64-efi
grub-mkimage -d "$grubdir" -O x86_64-efi -p /EFI/BOOT -o "$work/BOOTX64.EFI" \
    part_gpt fat ext2 normal linux configfile search echo test serial terminal gzio all_video efi_gop
cat > "$work/grub.cfg" <<'EOF'
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=5
menuentry "Debian" {
    linux /vmlinuz root=LABEL=debroot ro console=ttyS0 console=tty1
    initrd /initrd.img
}
EOF
mmd -i "$esp" ::/EFI ::/EFI/BOOT
mcopy -i "$esp" "$work/BOOTX64.EFI" "$work/grub.cfg" ::/EFI/BOOT/
mcopy -i "$esp" "$kernel" ::/vmlinuz
mcopy -i "$esp" "$initrd" ::/initrd.img

# Root file system, then the disk: ESP at 1 MiB, root after it.
root=$work/root.img
rm -f "$root"
mkfs.ext4 -q -L debroot -d "$rootfs" "$root" 3G
rm -f "$disk"
truncate -s 3400M "$disk"
sgdisk -o -n 1:2048:+256M -t 1:ef00 -n 2:0:0 -t 2:8300 "$disk" >/dev/null
dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$root" of="$disk" bs=1M seek=257 conv=notrunc,sparse status=none
echo "plain Debian: $disk ($(basename "$kernel"), $(du -h "$initrd" | cut -f1) initrd)" >&2
rm -rf "$rootfs" "$root" "$esp"
