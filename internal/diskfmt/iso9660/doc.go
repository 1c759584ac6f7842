// Package iso9660 writes bootable, hybrid ISO 9660 images without root,
// loop devices or external tools, byte-for-byte reproducibly: the Kairos
// live ISO that used to come from
//
//	xorriso -as mkisofs -iso-level 3 -full-iso9660-filenames -rational-rock -joliet \
//	  -volid COS_LIVE -eltorito-boot boot/grub/eltorito.img -no-emul-boot \
//	  -boot-load-size 4 -boot-info-table --grub2-boot-info --grub2-mbr boot_hybrid.img \
//	  -eltorito-alt-boot --efi-boot boot/uefi.img -efi-boot-part --efi-boot-image \
//	  --protective-msdos-label
//
// An Image is pure data (a tree of directories, files, symlinks and the boot
// options); Write lays it out and writes it. File contents are streamed from
// their openers, so a 700 MB squashfs never sits in memory. Nothing reads the
// clock: every timestamp comes from Image.ModTime (SOURCE_DATE_EPOCH) or the
// entries' own ModTime, directories are ordered by identifier, LBAs are
// allocated in a fixed order and GPT GUIDs are derived from the volume ID,
// its time and its directories, so two writes of the same Image give the same
// bytes.
//
// # Specifications, and the file that implements each
//
//   - ECMA-119 4th edition (= ISO 9660:2019), "Volume and File Structure of
//     CDROM for Information Interchange": voldesc.go (8.4 Primary Volume
//     Descriptor, 8.5 Supplementary, 8.3 Terminator, 8.2 Boot Record),
//     pathtable.go (9.4 Path Table), dirrecord.go (9.1 Directory Record),
//     names.go (7.5/7.6 identifiers, 9.3 ordering), encode.go (7.2/7.3 both-byte-order
//     numbers, 8.4.26.1 and 9.1.5 dates). Interchange level 3 behaviour:
//     file identifiers of up to 30 d-characters plus "." and ";1", one extent
//     per file, so files of 4 GiB or more are refused.
//   - IEEE P1281 System Use Sharing Protocol 1.12 (SUSP: SP, CE, ER) and
//     IEEE P1282 Rock Ridge Interchange Protocol 1.12 (RRIP: PX, TF, NM, SL),
//     written with the RRIP 1.10 "RRIP_1991A" extension reference and 36-byte
//     PX that xorriso and mkisofs write and every reader accepts: rockridge.go.
//   - Joliet Specification (Microsoft, 1995): a Supplementary Volume
//     Descriptor with escape sequence "%/E" (UCS-2 level 3) and a second
//     directory tree with UCS-2 big-endian names of up to 64 characters
//     (name and extension, as libisofs counts them): joliet.go.
//   - "El Torito" Bootable CD-ROM Format Specification 1.0 (Phoenix/IBM,
//     1995): Boot Record, boot catalog with a BIOS (platform 0x00) default
//     entry and an EFI (platform 0xEF, registered later by the UEFI
//     specification, 13.3.2) section, no emulation; the boot info table of
//     mkisofs; GRUB 2's boot info of xorriso --grub2-boot-info: eltorito.go.
//   - UEFI Specification 2.10, chapter 5 "GUID Partition Table (GPT) Disk
//     Layout" (protective MBR 5.2.3, header 5.3.2, entries 5.3.3), plus the
//     PC MBR partition table, laid out as libisofs does (libisofs
//     doc/boot_sectors.txt, "GPT" and "GRUB2 grub-mkrescue MBR"):
//     systemarea.go.
//
// # Image layout
//
// In 2048-byte blocks (LBAs):
//
//	0-15   system area: MBR with GRUB's boot_hybrid.img code, primary GPT
//	16     Primary Volume Descriptor
//	17     El Torito Boot Record              (with a boot image)
//	18     Joliet Supplementary Volume Desc.  (with Joliet)
//	       Volume Descriptor Set Terminator
//	       path tables: ISO L, ISO M, Joliet L, Joliet M
//	       ISO 9660 + Rock Ridge directories, breadth first
//	       SUSP continuation areas
//	       Joliet directories, breadth first
//	       boot catalog
//	       file contents: the BIOS boot image, the EFI boot image (then one
//	       zero block when it is a GPT partition), then every other file in
//	       tree order (depth first, by name); empty files and symlinks have
//	       no data and record block 0
//	       the GPT backup tail (16 blocks), or, with an appended ESP, the ESP
//	       partition and then the GPT backup tail
//
// The hybrid system area mirrors what xorriso writes with the options above,
// so the file boots as a CD (El Torito) and as a disk (MBR code, GPT with the
// EFI System Partition) under BIOS and UEFI: see systemarea.go.
//
// # Not supported
//
// Hard links (each path gets its own copy of the data), device files, FIFOs
// and sockets, extended attributes and ACLs (AAIP), zisofs, multi-session,
// multi-extent files (4 GiB and more: refused), Rock Ridge directory
// relocation (RE/CL/PL: deeper trees than ECMA-119's 8 levels are written as
// they are, which Linux, GRUB and xorriso read), symlink targets over 1023
// bytes (libisofs cannot read them back), xorriso's 300 KiB of trailing
// padding (-pad, for old Linux CD read-ahead bugs) and its exact mangling of
// colliding plain ISO 9660 names (Rock Ridge and Joliet names match).
package iso9660
