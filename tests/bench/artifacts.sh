#!/usr/bin/env bash
# Benchmark (not a test): our artifact writers against the reference C tools,
# in one run, on the same Debian rootfs, and print time and size ratios.
#
#   tests/bench/artifacts.sh [<image.oci.tar>]
#
# Default image: the one ./earthly.sh +test builds (build/e2e/*.oci.tar).
# Needs root only to unpack the rootfs with owners and devices for mksquashfs.
#
# Compared:
#   squashfs  kairos artifacts recovery   vs  mksquashfs with the same block size (128K for gzip,
#             1M for zstd: the media's sizes) and compressor (gzip level 9 for
#             mksquashfs, our default 7, whose size is within 0.2% of zlib -9), for gzip and zstd
#   ISO       kairos artifacts iso        vs  the upstream-style pipeline: mksquashfs + xorriso
# Targets from issue 4: squashfs time ratio <= 0.5 (gzip), <= 0.8 (zstd), size ratio <= 1.02;
# ISO time ratio <= 0.5.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$here"
image=${1:-$(ls build/e2e/*-core-*.oci.tar 2>/dev/null | head -n1)}
[ -f "$image" ] || { echo "no image: pass an OCI archive or run ./earthly.sh +test first" >&2; exit 1; }
work=$(mktemp -d /var/tmp/kairos-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
kairos=$work/kairos
go build -o "$kairos" ./cmd/kairos
export SOURCE_DATE_EPOCH=1700000000

secs() { local s=$SECONDS; "$@" >/dev/null 2>&1; echo $((SECONDS - s)); }
ms() { local s; s=$(date +%s%N); "$@" >/dev/null 2>&1; echo $((($(date +%s%N) - s) / 1000000)); }
size() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "image: $image"
echo "unpacking the rootfs for the reference tools..."
skopeo copy -q "oci-archive:$image" "oci:$work/layout:bench"
umoci raw unpack --image "$work/layout:bench" "$work/rootfs"
echo "rootfs: $(du -sh "$work/rootfs" | cut -f1)"
printf '\n%-10s %-6s %10s %10s %8s %12s %12s %8s\n' what comp "ours ms" "ref ms" "t-ratio" "ours bytes" "ref bytes" "s-ratio"
for comp in gzip zstd; do
	lvl=(); bs=1M; [ "$comp" = gzip ] && { lvl=(-Xcompression-level 9); bs=128K; }
	t_ours=$(ms "$kairos" artifacts recovery --source "dir:$work/rootfs" --name ours-$comp --compression "$comp" --output "$work")
	t_ref=$(ms mksquashfs "$work/rootfs" "$work/ref-$comp.squashfs" -comp "$comp" "${lvl[@]}" -b "$bs" -noappend -no-progress -quiet)
	s_ours=$(size "$work/ours-$comp.squashfs"); s_ref=$(size "$work/ref-$comp.squashfs")
	printf '%-10s %-6s %10d %10d %8s %12d %12d %8s\n' squashfs "$comp" "$t_ours" "$t_ref" "$(ratio "$t_ours" "$t_ref")" "$s_ours" "$s_ref" "$(ratio "$s_ours" "$s_ref")"
done

# ISO: ours from the image vs mksquashfs (gzip, its default) + mkfs.vfat/mtools + xorriso on the same tree.
t_ours=$(ms "$kairos" artifacts iso --source "oci-archive:$image" --name ours --output "$work")
assets=$work/rootfs/usr/lib/kairos/boot
iso_ref() {
	local t=$work/isotree
	rm -rf "$t"; mkdir -p "$t/boot/grub" "$t/EFI/BOOT"
	mksquashfs "$work/rootfs" "$t/rootfs.squashfs" -comp gzip -b 128K -noappend -no-progress -quiet
	cp -L "$work/rootfs/boot/vmlinuz" "$t/boot/kernel"; cp -L "$work/rootfs/boot/initrd" "$t/boot/initrd"
	cp "$assets/eltorito.img" "$t/boot/grub/"; cp overlay/iso/boot/grub/grub.cfg "$t/boot/grub/"
	cp overlay/iso/EFI/BOOT/grub.cfg "$t/EFI/BOOT/"
	mkfs.vfat -C -n COS_GRUB "$t/boot/uefi.img" 4096 >/dev/null
	mmd -i "$t/boot/uefi.img" ::/EFI ::/EFI/BOOT
	mcopy -i "$t/boot/uefi.img" "$assets/BOOTX64.EFI" overlay/iso/EFI/BOOT/grub.cfg ::/EFI/BOOT/
	xorriso -as mkisofs -iso-level 3 -full-iso9660-filenames -rational-rock -joliet -volid COS_LIVE \
		-eltorito-boot boot/grub/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
		--grub2-boot-info --grub2-mbr "$assets/boot_hybrid.img" \
		-eltorito-alt-boot --efi-boot boot/uefi.img -efi-boot-part --efi-boot-image \
		--protective-msdos-label -output "$work/ref.iso" "$t"
}
t_ref=$(ms iso_ref)
s_ours=$(size "$work/ours.iso"); s_ref=$(size "$work/ref.iso")
printf '%-10s %-6s %10d %10d %8s %12d %12d %8s\n' iso default "$t_ours" "$t_ref" "$(ratio "$t_ours" "$t_ref")" "$s_ours" "$s_ref" "$(ratio "$s_ours" "$s_ref")"
echo
echo "machine: $(nproc) cores; the ISO includes reading the image archive on our side."
