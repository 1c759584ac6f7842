#!/bin/sh
# Makes the kernel's boot files in a build container holding only what goes
# into them: the distro's packages (kernel, dracut or mkinitfs, grub),
# Kairos' own files and the agent. Nothing the user adds (overlay,
# cloud-config, version) is there, so changing those does not make the
# initrd again. Everything lands under $KAIROS_BOOT_OUT, which the image
# gets on top of its own root; the environment comes from the flavor data:
#   KAIROS_INITRD      dracut | mkinitfs
#   KAIROS_INITRD_MODULES  extra initrd modules (dracut --add), may be empty
#   GRUB_MKIMAGE       grub-mkimage | grub2-mkimage
#   GRUB_LIB           directory holding <platform>/ module directories
#   GRUB_EFI_PLATFORM  x86_64-efi | arm64-efi
#   GRUB_EFI_NAME      BOOTX64.EFI | BOOTAA64.EFI
#   KAIROS_BIOS        yes when the architecture boots from BIOS too
# and, when the image boots through the distro's signed chain (Secure Boot):
#   KAIROS_SHIM, KAIROS_SIGNED_GRUB, KAIROS_MOK_MANAGER  the signed binaries
#   KAIROS_GRUB_PREFIX  the ESP directory the signed GRUB reads first
#   SHIM_GRUB_NAME, SHIM_MOK_NAME  the names shim loads them by (grubx64.efi)
set -eu

say() { echo "kairos-boot: $*"; }
die() { echo "kairos-boot: error: $*" >&2; exit 1; }

out=${KAIROS_BOOT_OUT:?}
# Boot assets: what the artifact writers assemble (grub images, the
# initrd's network part); they never run grub or dracut themselves.
assets=$out/usr/lib/kairos/boot
mkdir -p "$out/boot" "$assets"

# --- kernel and initrd -------------------------------------------------------
kver=$(ls -1 /lib/modules 2>/dev/null | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel installed (/lib/modules is empty): check the flavor's kernel package"
kernel=""
for k in "/boot/vmlinuz-$kver" "/boot/vmlinux-$kver" "/boot/Image-$kver" "/lib/modules/$kver/vmlinuz" /boot/vmlinuz-lts /boot/vmlinuz-virt; do
    if [ -f "$k" ]; then kernel=$k; break; fi
done
[ -n "$kernel" ] || die "kernel $kver has no image under /boot or /lib/modules/$kver"
if [ "$kernel" != "/boot/vmlinuz-$kver" ]; then cp "$kernel" "$out/boot/vmlinuz-$kver"; fi
say "kernel $kver"

case "$KAIROS_INITRD" in
dracut)
    # Two initrds of one configuration. Booting from a disk or live media
    # (installed system, recovery, ISO, USB stick) needs no network in the
    # initramfs; a network boot does (livenet fetches the root over HTTP):
    # NIC drivers, a DHCP client, curl, 50 of 169 MB unpacked, 11 of 46 MB
    # compressed, which every local boot would otherwise read through GRUB
    # (about 10 MB/s under emulation) and unpack. /boot/initrd is the local
    # one; the network's part is an add-on archive (the files the netboot
    # initrd has that the local one lacks or has otherwise), which the
    # netboot artifact appends to it: the kernel unpacks concatenated
    # archives in turn, a later file replacing an earlier one.
    # --reproducible (with SOURCE_DATE_EPOCH) sorts and stamps the archives.
    netmods="livenet network network-legacy network-manager systemd-networkd connman url-lib kernel-network-modules qemu-net nfs iscsi cifs nbd fcoe fcoe-uefi"
    dracut --force --no-hostonly ${SOURCE_DATE_EPOCH:+--reproducible} \
        ${KAIROS_INITRD_MODULES:+--add "$KAIROS_INITRD_MODULES"} --omit "$netmods" --kver "$kver" "$out/boot/initrd-$kver"
    # The netboot initrd is only compared with the local one: not compressed
    # (40 s of zstd saved).
    tmp=$(mktemp -d)
    dracut --force --no-hostonly ${SOURCE_DATE_EPOCH:+--reproducible} --no-compress \
        ${KAIROS_INITRD_MODULES:+--add "$KAIROS_INITRD_MODULES"} --kver "$kver" "$tmp/netboot.img"
    mkdir "$tmp/local" "$tmp/net"
    (cd "$tmp/local" && lsinitrd --unpack "$out/boot/initrd-$kver")
    (cd "$tmp/net" && lsinitrd --unpack "$tmp/netboot.img")
    # Every directory (recreating one is harmless, a missing parent is
    # not), then what is new or different.
    (cd "$tmp/net" && find . -mindepth 1 | LC_ALL=C sort | while IFS= read -r f; do
        l=$tmp/local/$f
        if [ -d "$f" ] && [ ! -L "$f" ]; then
            echo "$f"
        elif [ -L "$f" ]; then
            [ -L "$l" ] && [ "$(readlink "$f")" = "$(readlink "$l")" ] || echo "$f"
        elif [ -L "$l" ] || ! cmp -s "$f" "$l"; then
            echo "$f"
        fi
    done) > "$tmp/addon.list"
    addon=$assets/initrd-network
    if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
        (cd "$tmp/net" && find . -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +)
    fi
    (cd "$tmp/net" && cpio -o -H newc -R 0:0 --reproducible --quiet < "$tmp/addon.list") | zstd -15 -q -T0 > "$addon"
    say "netboot add-on $(du -h "$addon" | cut -f1), $(wc -l < "$tmp/addon.list") entries"
    rm -rf "$tmp" ;;
mkinitfs)
    # Features come from /etc/mkinitfs/mkinitfs.conf (the kairos feature adds
    # the agent and the live boot's modules); /init is Kairos' own, which boots
    # the live media's dmsquash-live command line (see the file).
    init=/usr/lib/kairos/mkinitfs/init
    [ -f "$init" ] || die "$init is missing: the overlay's initrd/mkinitfs tree was not added"
    mkinitfs -i "$init" -o "$out/boot/initrd-$kver" "$kver" ;;
*)
    die "unknown initrd tool $KAIROS_INITRD" ;;
esac
ln -sf "vmlinuz-$kver" "$out/boot/vmlinuz"
ln -sf "initrd-$kver" "$out/boot/initrd"
say "initrd $(du -h "$out/boot/initrd-$kver" | cut -f1)"

# --- boot assets: grub images made from the image's own grub -----------------
common="part_gpt part_msdos fat ext2 iso9660 squash4 loopback normal configfile search search_label search_fs_uuid search_fs_file linux echo test true regexp loadenv cat ls halt reboot serial terminal gzio xzio zstd sleep minicmd"
if [ -n "${KAIROS_SHIM:-}" ]; then
    # Secure Boot: the firmware runs shim (signed by the CA it trusts) as the
    # removable-media loader; shim runs the distro's signed GRUB from beside
    # itself, which has every module our menus use built in and verifies the
    # kernel through shim. Nothing here is rebuilt, or the signatures break.
    for f in "$KAIROS_SHIM" "$KAIROS_SIGNED_GRUB" "$KAIROS_MOK_MANAGER"; do
        [ -f "$f" ] || die "$f is missing: the flavor's secure_boot packages do not install it (flavors/<flavor>.yaml)"
    done
    cp "$KAIROS_SHIM" "$assets/$GRUB_EFI_NAME"
    cp "$KAIROS_SIGNED_GRUB" "$assets/$SHIM_GRUB_NAME"
    cp "$KAIROS_MOK_MANAGER" "$assets/$SHIM_MOK_NAME"
    # The writers put the ESP menu in this directory too, so the signed GRUB
    # finds it without searching other disks.
    echo "$KAIROS_GRUB_PREFIX" > "$assets/grub-prefix"
    say "signed chain: shim $KAIROS_SHIM, grub $KAIROS_SIGNED_GRUB"
else
    "$GRUB_MKIMAGE" -d "$GRUB_LIB/$GRUB_EFI_PLATFORM" -O "$GRUB_EFI_PLATFORM" -p /EFI/BOOT \
        -o "$assets/$GRUB_EFI_NAME" $common all_video efi_gop
fi
if [ "${KAIROS_BIOS:-no}" = yes ]; then
    "$GRUB_MKIMAGE" -d "$GRUB_LIB/i386-pc" -O i386-pc-eltorito -p /boot/grub \
        -o "$assets/eltorito.img" $common biosdisk
    # The installed disk's BIOS core (in its bios_grub partition) runs the
    # same first stage as the ESP: find COS_STATE, load its menu.
    "$GRUB_MKIMAGE" -d "$GRUB_LIB/i386-pc" -O i386-pc -p /grub2 -c /etc/cos/grub_efi.cfg \
        -o "$assets/core.img" $common biosdisk
    cp "$GRUB_LIB/i386-pc/boot_hybrid.img" "$GRUB_LIB/i386-pc/boot.img" "$assets/"
fi
say "boot assets in /usr/lib/kairos/boot: $(ls "$assets" | tr '\n' ' ')"
