// Package fat writes FAT16 and FAT32 file system images, the format of EFI
// System Partitions, without mkfs, mtools, root, mounts or loop devices, and
// byte-for-byte reproducibly.
//
// Specifications: Microsoft "FAT: General Overview of On-Disk Format"
// (fatgen103, version 1.03, 2000) for the boot sector, BPB, FSInfo, FAT and
// directory entries; Microsoft's long file name extension (VFAT) for long
// names, as described in the same document's "FAT Long Directory Entries";
// UEFI Specification 2.10 section 13.3 "File System Format" for what
// firmware reads (FAT12/16/32; FAT32 for system partitions). One file per
// structure:
//
//   - bootsector.go: boot sector with BPB and extended BPB (volume ID, label);
//   - fsinfo.go:     the FAT32 FSInfo sector (exact free cluster count);
//   - fat.go:        the allocation table, written twice;
//   - dirent.go:     32-byte short directory entries and DOS timestamps;
//   - lfn.go:        VFAT long-name entries and their checksum;
//   - shortname.go:  deterministic 8.3 names ("grub.cfg" -> GRUB.CFG,
//     "Long Name.txt" -> LONGNA~1.TXT, BOOTX64.EFI unchanged, no LFN);
//   - geometry.go:   FAT variant, cluster size, where each region lives;
//   - plan.go:       cluster allocation of the tree (an fstree.Node of
//     directories and regular files) and directory contents.
//
// Reproducibility: entries are sorted by name, clusters allocated in one
// deterministic pass (every file and directory contiguous), timestamps
// come from Options.ModTime (SOURCE_DATE_EPOCH) and the volume ID from the
// label unless given. Layout: FAT16 uses 1 reserved sector and a 512-entry
// root directory; FAT32 uses 32 reserved sectors (boot sector, FSInfo,
// backups at 6 and 7) and a root directory at cluster 2.
//
// Not supported: FAT12 (firmware reads FAT16 on any size this package
// accepts, from about 2.1 MiB), sector sizes other than 512 bytes, file
// attributes other than archive/directory, per-file timestamps.
package fat
