// Package fstree is the file tree every writer and reader of
// internal/diskfmt shares: a Node per entry (type and permissions in an
// io/fs FileMode, owner, time, content opener, symlink target, device
// numbers, xattrs, hardlink group), built from a directory on disk
// (DirSource), from OCI layers (internal/rootfs) or in memory (Add,
// Mkdir, File), looked up as the image's root would resolve paths
// (Lookup, ReadFile), and handed to writers in one order (Sorted).
//
// Writers never modify a tree; each checks what its format can hold.
package fstree
