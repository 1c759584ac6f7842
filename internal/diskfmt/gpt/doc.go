// Package gpt writes a GUID Partition Table disk layout into a disk image
// without root, loop devices or partitioning tools, byte-for-byte
// reproducibly.
//
// Specification: UEFI Specification 2.10, chapter 5 "GUID Partition Table
// (GPT) Disk Layout" (https://uefi.org/specs/UEFI/2.10/05_GUID_Partition_Table_Format.html):
// 5.2.3 protective MBR, 5.3.2 GPT header, 5.3.3 partition entry array. The
// structures, one file each:
//
//   - guid.go:   GUIDs, their mixed-endian on-disk encoding, the partition
//     type GUIDs used by Kairos and deterministic UUIDv5 GUIDs from labels;
//   - mbr.go:    the protective MBR in LBA 0 (optionally with BIOS boot code);
//   - header.go: the primary (LBA 1) and backup (last LBA) GPT headers;
//   - entry.go:  the 128-byte partition entries, 128 of them, in LBA 2-33 and
//     again just before the backup header;
//   - write.go:  Write, and Encode, which also serves the hybrid ISO writer
//     (package iso9660): its GPT has a 248-entry array filling the 32 KiB
//     ISO 9660 System Area, so package gpt is the one GPT encoder;
//   - table.go:  Table and Partition, pure data, with Layout and validation.
//
// Sectors are 512 bytes (what disk images and virtual disks use). The
// contract of the installed Kairos disk (docs: kairos-contracts "Installed
// disk") puts the first partition at 1 MiB and derives partition GUIDs from
// the file system label with UUIDv5 (URL namespace), as upstream AuroraBoot
// does; LabelGUID computes them.
//
// Write only writes the partitioning structures: the caller writes each file
// system at Partition.Offset(). The target should be a new (sparse) file of
// the disk size, so that the gaps between structures read as zeros.
package gpt
