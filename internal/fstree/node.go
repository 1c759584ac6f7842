package fstree

import (
	"bytes"
	"io"
	"io/fs"
)

// Node is one entry of a file tree: what a directory on disk (DirSource),
// OCI layers (a tree built from tar headers) and generated content produce,
// and what every writer of internal/diskfmt takes. Writers never modify it;
// each refuses what its format cannot hold (FAT: only directories and
// regular files; ISO 9660: no devices).
//
// The type comes from Mode's type bits, as in io/fs:
//
//	0 (regular file)          content from Open, Size bytes
//	fs.ModeDir                Children
//	fs.ModeSymlink            Target
//	fs.ModeDevice             block device DevMajor:DevMinor
//	fs.ModeDevice|fs.ModeCharDevice  character device
//	fs.ModeNamedPipe          fifo
//	fs.ModeSocket             socket
//
// Permission bits are Mode.Perm() plus fs.ModeSetuid, fs.ModeSetgid and
// fs.ModeSticky.
type Node struct {
	// Name is the entry name inside its parent: no "/", not "." or ".."
	// (CheckName); formats cap its length (squashfs 256 bytes, ISO 9660
	// and ext4 255). Ignored on the root.
	Name     string
	Mode     fs.FileMode
	UID, GID uint32
	// ModTime is the modification time in seconds since the epoch.
	// Formats with narrower fields clamp it (squashfs: unsigned 32 bits).
	ModTime int64
	// Size is the content length of a regular file. Writers check that
	// Open yields exactly Size bytes, and fail if not (a file that
	// changed while being read).
	Size int64
	// Target is a symlink's target, stored verbatim (may dangle).
	Target string
	// DevMajor and DevMinor identify a device node (Linux encoding:
	// major < 4096, minor < 2^20).
	DevMajor, DevMinor uint32
	// Xattrs are extended attributes by full name ("user.x",
	// "security.capability", "trusted.y"). Formats keep the namespaces
	// they can store (squashfs: user., trusted., security.).
	Xattrs map[string][]byte
	// Open returns a regular file's content. It may be called more than
	// once (squashfs' duplicate detection re-reads a file to verify a
	// match), and from a goroutine other than the caller's. May be nil
	// when Size is 0.
	Open func() (io.ReadCloser, error)
	// LinkID groups hardlinks: non-directory nodes with the same non-zero
	// LinkID are one inode (stored once, with a link count). They should
	// all describe the same file: the first one met (depth first, entries
	// in name order) provides the metadata and content, the others only
	// their name. Zero means not hardlinked.
	LinkID uint64
	// Children are a directory's entries, in any order (writers take them
	// through Sorted, bytewise by name). Names must be unique.
	Children []*Node
}

// Dir returns an empty directory with mode perm and the given time.
func Dir(perm fs.FileMode, mtime int64) *Node {
	return &Node{Mode: fs.ModeDir | perm, ModTime: mtime}
}

// File returns a regular file holding data.
func File(data []byte, perm fs.FileMode, mtime int64) *Node {
	return &Node{Mode: perm, ModTime: mtime, Size: int64(len(data)), Open: BytesOpener(data)}
}

// BytesOpener returns an Open function serving data from memory, for trees
// built in memory (tests, small generated files).
func BytesOpener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}
