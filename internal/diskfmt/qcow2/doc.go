// Package qcow2 converts a raw disk image into a qcow2 (version 3) image
// without qemu-img, root, mounts or loop devices, byte-for-byte reproducibly.
//
// Specification: QEMU's "QCOW2 Image Format", docs/interop/qcow2.txt in the
// QEMU source tree (https://gitlab.com/qemu-project/qemu/-/blob/master/docs/interop/qcow2.txt).
// The structures used here, one file each:
//
//   - header.go:   the image header (version 3, 104 bytes) at offset 0;
//   - l1l2.go:     the two-level cluster map (L1 table -> L2 tables -> data
//     clusters), entries with the OFLAG_COPIED bit since every cluster has a
//     reference count of exactly 1;
//   - refcount.go: the refcount table and refcount blocks (refcount_order 4,
//     16-bit big-endian counts) that account for every host cluster;
//   - layout.go:   where each of the above lands in the file (pure arithmetic);
//   - scan.go:     which guest clusters hold data (holes skipped with
//     SEEK_DATA/SEEK_HOLE, data regions checked for all-zero clusters).
//
// The output is a "sparse" qcow2 image: guest clusters that read as all zeros
// are not stored and their L2 entries stay 0 (unallocated, read as zeros since
// the image has no backing file). Host layout, in order, all cluster-aligned:
//
//	header | L1 table | refcount table | refcount blocks | L2 tables | data
//
// Data clusters follow guest order, so the file is written strictly
// sequentially and Convert can stream into any io.Writer (a pipe, a hash, a
// tar entry). The price of streaming is that the header must already know how
// many clusters are stored: the source is scanned once for zero clusters and
// the stored clusters are read a second time (normally from the page cache).
//
// Not supported (not needed for freshly built images): compression,
// encryption, backing files, snapshots, external data files, extended L2.
package qcow2
