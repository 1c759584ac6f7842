#!/bin/sh
# Runs inside the image being built, after packages, overlay and agent are in
# place. Everything distro-specific arrives as environment from the flavor data:
#   KAIROS_INITRD      dracut | mkinitfs
#   KAIROS_INITRD_MODULES  extra initrd modules (dracut --add), may be empty
#   KAIROS_INIT        systemd | openrc
#   GRUB_MKIMAGE       grub-mkimage | grub2-mkimage
#   GRUB_LIB           directory holding <platform>/ module directories
#   GRUB_EFI_PLATFORM  x86_64-efi | arm64-efi
#   GRUB_EFI_NAME      BOOTX64.EFI | BOOTAA64.EFI
#   KAIROS_BIOS        yes when the architecture boots from BIOS too
set -eu

say() { echo "kairos-finalize: $*"; }
die() { echo "kairos-finalize: error: $*" >&2; exit 1; }

# --- kernel and initrd -------------------------------------------------------
kver=$(ls -1 /lib/modules 2>/dev/null | sort -V | tail -n 1)
[ -n "$kver" ] || die "no kernel installed (/lib/modules is empty): check the flavor's kernel package"
kernel=""
for k in "/boot/vmlinuz-$kver" "/boot/vmlinux-$kver" "/boot/Image-$kver" "/lib/modules/$kver/vmlinuz" /boot/vmlinuz-lts /boot/vmlinuz-virt; do
    if [ -f "$k" ]; then kernel=$k; break; fi
done
[ -n "$kernel" ] || die "kernel $kver has no image under /boot or /lib/modules/$kver"
if [ "$kernel" != "/boot/vmlinuz-$kver" ]; then cp "$kernel" "/boot/vmlinuz-$kver"; fi
say "kernel $kver"

# Initrds made by package hooks were built before our module existed: drop them.
rm -f /boot/initrd.img-* /boot/initramfs-* /boot/initrd-*
case "$KAIROS_INITRD" in
dracut)
    # --reproducible (with SOURCE_DATE_EPOCH) sorts and stamps the archive.
    dracut --force --no-hostonly ${SOURCE_DATE_EPOCH:+--reproducible} \
        ${KAIROS_INITRD_MODULES:+--add "$KAIROS_INITRD_MODULES"} --kver "$kver" "/boot/initrd-$kver" ;;
mkinitfs)
    # Features come from /etc/mkinitfs/mkinitfs.conf (the kairos feature adds
    # the agent and the live boot's modules); /init is Kairos' own, which boots
    # the live media's dmsquash-live command line (see the file).
    init=/usr/lib/kairos/mkinitfs/init
    [ -f "$init" ] || die "$init is missing: the overlay's initrd/mkinitfs tree was not added"
    mkinitfs -i "$init" -o "/boot/initrd-$kver" "$kver" ;;
*)
    die "unknown initrd tool $KAIROS_INITRD" ;;
esac
ln -sf "vmlinuz-$kver" /boot/vmlinuz
ln -sf "initrd-$kver" /boot/initrd
say "initrd $(du -h "/boot/initrd-$kver" | cut -f1)"

# --- boot assets: grub images made from the image's own grub -----------------
# Artifact writers only assemble these files; they never run grub themselves.
assets=/usr/lib/kairos/boot
mkdir -p "$assets"
common="part_gpt part_msdos fat ext2 iso9660 squash4 loopback normal configfile search search_label search_fs_uuid search_fs_file linux echo test true regexp loadenv cat ls halt reboot serial terminal gzio xzio zstd sleep minicmd"
"$GRUB_MKIMAGE" -d "$GRUB_LIB/$GRUB_EFI_PLATFORM" -O "$GRUB_EFI_PLATFORM" -p /EFI/BOOT \
    -o "$assets/$GRUB_EFI_NAME" $common all_video efi_gop
if [ "${KAIROS_BIOS:-no}" = yes ]; then
    "$GRUB_MKIMAGE" -d "$GRUB_LIB/i386-pc" -O i386-pc-eltorito -p /boot/grub \
        -o "$assets/eltorito.img" $common biosdisk
    # The installed disk's BIOS core (in its bios_grub partition) runs the
    # same first stage as the ESP: find COS_STATE, load its menu.
    "$GRUB_MKIMAGE" -d "$GRUB_LIB/i386-pc" -O i386-pc -p /grub2 -c /etc/cos/grub_efi.cfg \
        -o "$assets/core.img" $common biosdisk
    cp "$GRUB_LIB/i386-pc/boot_hybrid.img" "$GRUB_LIB/i386-pc/boot.img" "$assets/"
fi
say "boot assets in $assets: $(ls "$assets" | tr '\n' ' ')"

# --- services ----------------------------------------------------------------
if [ "$KAIROS_INIT" = systemd ]; then
    for unit in /usr/lib/systemd/system/kairos-*.service /usr/lib/systemd/system/cos-setup-*.service \
        /usr/lib/systemd/system/cos-setup-*.timer; do
        # Units without an [Install] section (timer-driven ones) stay as they are.
        grep -q '^\[Install\]' "$unit" 2>/dev/null || continue
        systemctl enable "$(basename "$unit")"
    done
    # DHCP on wired interfaces (/etc/systemd/network/20-dhcp.network) where
    # the distro has no network manager of its own enabled.
    if [ -x /usr/lib/systemd/systemd-networkd ] && ! systemctl -q is-enabled NetworkManager.service 2>/dev/null; then
        systemctl enable systemd-networkd.service
        say "networking: systemd-networkd (DHCP on en*/eth*)"
    fi
elif [ "$KAIROS_INIT" = openrc ]; then
    # A container base has no runlevels at all: give the image those of an
    # installed system (as Alpine's setup-alpine does), then the Kairos
    # services. Services the image does not ship are skipped.
    rc_enable() {
        level=$1
        shift
        for svc in "$@"; do
            if [ -e "/etc/init.d/$svc" ]; then rc-update add "$svc" "$level" >/dev/null; fi
        done
    }
    if [ -e /etc/init.d/udev ]; then
        rc_enable sysinit devfs dmesg udev udev-trigger udev-settle
    else
        rc_enable sysinit devfs dmesg mdev hwdrivers
    fi
    rc_enable boot modules sysctl hostname bootmisc syslog hwclock swap localmount seedrng urandom cos-setup-fs
    # networking fails without an interfaces file: leave it to cloud-config.
    if [ -f /etc/network/interfaces ]; then rc_enable boot networking; fi
    rc_enable default kairos-ssh-keygen sshd crond acpid kairos-datasource cos-setup-boot cos-setup-network cos-setup-reconcile kairos-agent
    rc_enable shutdown mount-ro killprocs savecache
    # The live media's console is serial (console=ttyS0): give it a login.
    if [ -f /etc/inittab ] && grep -q '^#ttyS0:' /etc/inittab; then
        sed -i 's/^#ttyS0:/ttyS0:/' /etc/inittab
    fi
    say "openrc runlevels: $(cd /etc/runlevels && echo */*)"
fi

# --- mount points of the installed layout -------------------------------------
# The root is read-only when installed: the mounter can create nothing in it,
# so every mount point of the contract exists in the image.
mkdir -p /oem /usr/local /srv /home /opt /root /usr/libexec

# --- default user of the live and installer media ----------------------------
# The account ships locked (no password: useradd and busybox adduser -D
# leave "!"): only live and netboot media unlock it, at boot, with
# /system/oem/10_live.yaml. An installed node has exactly the users its
# cloud-config defines.
if ! id kairos >/dev/null 2>&1; then
    if command -v useradd >/dev/null 2>&1; then
        useradd --create-home --shell /bin/bash kairos
    else
        # busybox (Alpine without shadow): -D leaves the account locked.
        shell=/bin/sh
        if [ -x /bin/bash ]; then shell=/bin/bash; fi
        adduser -D -s "$shell" kairos
    fi
fi
# A base image that had the user with a password: lock it all the same.
if [ -f /etc/shadow ]; then sed -i 's/^kairos:[^:]*:/kairos:!:/' /etc/shadow; fi
# useradd records today as the day of the last password change: emptied
# (aging disabled), as the package step does for its accounts, so that the
# image does not depend on the day it was built.
for f in /etc/shadow /etc/shadow-; do
    if [ -f "$f" ]; then sed -i 's/^\([^:]*:[^:]*:\)[0-9]*:/\1:/' "$f"; fi
done

# --- SSH: keys only, unless a cloud-config asks for passwords ------------------
# /etc/ssh/sshd_config.d/40-kairos.conf (overlay/rootfs) turns password
# logins off; sshd takes the first value it reads, so a drop-in with a
# smaller name (the live media's 30-kairos-live.conf, or one a
# cloud-config writes) turns them back on. Distros whose sshd_config does
# not read the drop-in directory get the Include line.
if [ -f /etc/ssh/sshd_config ] && ! grep -qi '^Include /etc/ssh/sshd_config.d/' /etc/ssh/sshd_config; then
    sed -i '1i Include /etc/ssh/sshd_config.d/*.conf' /etc/ssh/sshd_config
fi

# --- per-machine identity and leftovers must not ship ------------------------
# /etc/hostname and /etc/hosts come from overlay/rootfs: BuildKit bind-mounts
# its own over them while this runs, so what is written here never ships.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id /etc/ssh/ssh_host_*
rm -rf /tmp/* /var/tmp/* /var/log/*.log /root/.cache
# ldconfig's aux cache records inode numbers and times of the build machine.
rm -f /var/cache/ldconfig/aux-cache
