package squashfs

import (
	"bytes"
	"io"
	"io/fs"
)

// Node is one entry of the tree handed to Write: the source interface that
// both a directory on disk (DirSource) and, later, OCI layers (a tree built
// in memory from tar headers) produce. Write never modifies it.
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
	// Name is the entry name inside its parent: no "/", not "." or "..",
	// at most 256 bytes (the kernel's SQUASHFS_NAME_LEN). Ignored on the
	// root.
	Name     string
	Mode     fs.FileMode
	UID, GID uint32
	// ModTime is the modification time in seconds since the epoch.
	// Squashfs stores it as unsigned 32 bits; values outside are clamped
	// (and counted in Stats.ClampedTimes).
	ModTime int64
	// Size is the content length of a regular file. Write checks that
	// Open yields exactly Size bytes, and fails if not (a file that
	// changed while being read).
	Size int64
	// Target is a symlink's target, stored verbatim (may dangle).
	Target string
	// DevMajor and DevMinor identify a device node (Linux encoding:
	// major < 4096, minor < 2^20).
	DevMajor, DevMinor uint32
	// Xattrs are extended attributes by full name ("user.x",
	// "security.capability", "trusted.y"). Squashfs can store only the
	// user., trusted. and security. namespaces; others (e.g. system.*
	// POSIX ACLs) are left out and counted in Stats.SkippedXattrs.
	Xattrs map[string][]byte
	// Open returns a regular file's content. It may be called more than
	// once (duplicate detection re-reads a file to verify a match), and
	// from a goroutine other than the caller's. May be nil when Size is 0.
	Open func() (io.ReadCloser, error)
	// LinkID groups hardlinks: non-directory nodes with the same non-zero
	// LinkID are one inode (stored once, with a link count). They should
	// all describe the same file: the first one met (depth first, entries
	// in name order) provides the metadata and content, the others only
	// their name. Zero means not hardlinked.
	LinkID uint64
	// Children are a directory's entries, in any order (Write sorts them
	// by name, bytewise, as squashfs requires). Names must be unique.
	Children []*Node
}

// BytesOpener returns an Open function serving data from memory, for trees
// built in memory (tests, small generated files).
func BytesOpener(data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}
}
