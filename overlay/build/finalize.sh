#!/bin/sh
# Runs inside the image being built, after packages, overlay and agent are in
# place; the kernel's boot files come from boot.sh, on top of what this
# leaves. Everything distro-specific arrives as environment from the flavor
# data:
#   KAIROS_INIT        systemd | openrc
set -eu

say() { echo "kairos-finalize: $*"; }
die() { echo "kairos-finalize: error: $*" >&2; exit 1; }

# Initrds made by package hooks were built before our module existed: drop
# them (boot.sh's initrd is added after this step).
rm -f /boot/initrd.img-* /boot/initramfs-* /boot/initrd-*

# --- services ----------------------------------------------------------------
if [ "$KAIROS_INIT" = systemd ]; then
    for unit in /usr/lib/systemd/system/kairos-*.service /usr/lib/systemd/system/cos-setup-*.service \
        /usr/lib/systemd/system/cos-setup-*.timer; do
        # Units without an [Install] section (timer-driven ones) stay as they are.
        grep -q '^\[Install\]' "$unit" 2>/dev/null || continue
        systemctl enable "$(basename "$unit")"
    done
    # e2fsprogs' e2scrub checks ext4 file systems on LVM through LVM
    # snapshots; Kairos' partitions are never LVM volumes, so these would
    # only hold up every boot (e2scrub_reap: 2 to 6 s of shell under
    # emulation, which the login prompt waits for).
    for unit in e2scrub_reap.service e2scrub_all.timer; do
        if systemctl -q is-enabled "$unit" 2>/dev/null; then
            systemctl disable "$unit"
            say "disabled $unit (no LVM in the Kairos layout)"
        fi
    done
    # Debian's nohang package enables both of its services, which conflict:
    # every boot started one, then the other stopped it (a Python daemon
    # started twice, seconds of CPU under emulation). A node is a server:
    # nohang.service, not the desktop profile.
    if systemctl -q is-enabled nohang.service 2>/dev/null && systemctl -q is-enabled nohang-desktop.service 2>/dev/null; then
        systemctl disable nohang-desktop.service
        say "disabled nohang-desktop.service (conflicts with nohang.service)"
    fi
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
        # No udev-settle: what needs a device waits for that one (bounded).
        rc_enable sysinit devfs dmesg udev udev-trigger
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
