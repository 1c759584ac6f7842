package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// Extended attributes (Documentation/filesystems/ext4/attributes.rst). An
// inode's attributes are stored either in the space after its extra fields
// (in-inode, behind a 4-byte magic) or in one attribute block named by
// i_file_acl (a 32-byte header, then the entries). Either way the entries
// come first, end with four zero bytes, and their values are packed from
// the end of the space downwards, each padded to 4 bytes. Attributes that
// fit go in the inode, so that reading them costs no extra block; the rest
// go, all of them, into a block of their own (refcount 1: blocks are not
// shared between inodes).
const (
	xattrMagic       = 0xEA020000
	xattrBlockHeader = 32
	xattrEntryHeader = 16

	// inodeXattrSpace is what follows the 128-byte base inode and its
	// extra fields, magic included.
	inodeXattrSpace = inodeSize - goodOldInodeSize - extraIsize
)

// Attribute name indexes: the name's namespace prefix is stored as a number
// and only the rest of the name is kept.
const (
	xattrIndexUser       = 1
	xattrIndexACLAccess  = 2
	xattrIndexACLDefault = 3
	xattrIndexTrusted    = 4
	xattrIndexSecurity   = 6
	xattrIndexSystem     = 7
)

const (
	aclAccessName  = "system.posix_acl_access"
	aclDefaultName = "system.posix_acl_default"
)

var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"user.", xattrIndexUser},
	{"trusted.", xattrIndexTrusted},
	{"security.", xattrIndexSecurity},
	{"system.", xattrIndexSystem},
}

type xattr struct {
	index uint8
	name  string // without the namespace prefix
	value []byte // as stored on disk (ACLs converted)
}

func (x *xattr) entryLen() int { return (xattrEntryHeader + len(x.name) + 3) &^ 3 }
func (x *xattr) valueLen() int { return (len(x.value) + 3) &^ 3 }

// xattrs are an inode's attributes, sorted as the kernel keeps attribute
// blocks sorted (by index, name length, name) so that lookups can stop
// early.
type xattrs struct {
	list    []xattr
	inInode bool // else they need an attribute block
}

// parseXattrs converts a Node's attributes to their on-disk form.
func parseXattrs(m map[string][]byte) (xattrs, error) {
	var xs xattrs
	if len(m) == 0 {
		return xs, nil
	}
	for full, v := range m {
		x, err := newXattr(full, v)
		if err != nil {
			return xs, err
		}
		xs.list = append(xs.list, x)
	}
	sort.Slice(xs.list, func(i, j int) bool {
		a, b := &xs.list[i], &xs.list[j]
		if a.index != b.index {
			return a.index < b.index
		}
		if len(a.name) != len(b.name) {
			return len(a.name) < len(b.name)
		}
		return a.name < b.name
	})
	need := xattrSpace(xs.list)
	switch {
	case need <= inodeXattrSpace-4:
		xs.inInode = true
	case need > blockSize-xattrBlockHeader:
		return xs, fmt.Errorf("extended attributes take %d bytes, more than one %d-byte block holds (ea_inode is not supported)", need, blockSize)
	}
	return xs, nil
}

func newXattr(full string, v []byte) (xattr, error) {
	x := xattr{value: v}
	switch full {
	case aclAccessName, aclDefaultName:
		x.index = xattrIndexACLAccess
		if full == aclDefaultName {
			x.index = xattrIndexACLDefault
		}
		acl, err := aclToDisk(v)
		if err != nil {
			return x, fmt.Errorf("xattr %s: %w", full, err)
		}
		x.value = acl
		return x, nil
	}
	for _, p := range xattrPrefixes {
		if strings.HasPrefix(full, p.prefix) {
			x.index, x.name = p.index, full[len(p.prefix):]
			break
		}
	}
	switch {
	case x.index == 0:
		return x, fmt.Errorf("xattr %q: namespace not supported by ext4 (user., trusted., security., system.)", full)
	case x.name == "":
		return x, fmt.Errorf("xattr %q: empty name", full)
	case len(x.name) > 255:
		return x, fmt.Errorf("xattr %q: name longer than 255 bytes", full)
	}
	return x, nil
}

// xattrSpace is the room list takes: entries, the 4-byte end marker and
// the padded values.
func xattrSpace(list []xattr) int {
	n := 4
	for i := range list {
		n += list[i].entryLen() + list[i].valueLen()
	}
	return n
}

// putXattrs writes the entries of list at buf[first:] and their values at
// the end of buf; value offsets are relative to buf[base:]. It returns the
// entries' hashes.
func putXattrs(buf []byte, first, base int, list []xattr) []uint32 {
	le := binary.LittleEndian
	hashes := make([]uint32, len(list))
	pos, end := first, len(buf)
	for i := range list {
		x := &list[i]
		e := buf[pos:]
		e[0] = byte(len(x.name))
		e[1] = x.index
		if len(x.value) > 0 {
			end -= x.valueLen()
			copy(buf[end:], x.value)
			le.PutUint16(e[2:], uint16(end-base))
		}
		le.PutUint32(e[4:], 0) // e_value_inum: value not in an inode
		le.PutUint32(e[8:], uint32(len(x.value)))
		hashes[i] = xattrHash(x.name, buf[end:end+x.valueLen()], len(x.value) > 0)
		le.PutUint32(e[12:], hashes[i])
		copy(e[xattrEntryHeader:], x.name)
		pos += x.entryLen()
	}
	// The four zero bytes after the last entry end the list: buf is fresh.
	return hashes
}

// xattrHash is the entry hash e2fsck verifies: a rotate-xor of the name's
// bytes, then of the value's little-endian 32-bit words (zero-padded).
func xattrHash(name string, paddedValue []byte, hasValue bool) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<5 ^ h>>(32-5) ^ uint32(name[i])
	}
	if hasValue {
		for i := 0; i+4 <= len(paddedValue); i += 4 {
			h = h<<16 ^ h>>(32-16) ^ binary.LittleEndian.Uint32(paddedValue[i:])
		}
	}
	return h
}

// marshalInodeXattrs fills the in-inode attribute space (inode bytes from
// goodOldInodeSize+extraIsize on).
func marshalInodeXattrs(space []byte, list []xattr) {
	binary.LittleEndian.PutUint32(space[0:], xattrMagic)
	putXattrs(space, 4, 4, list)
}

// marshalXattrBlock returns an attribute block holding list.
func marshalXattrBlock(list []xattr) []byte {
	le := binary.LittleEndian
	b := make([]byte, blockSize)
	le.PutUint32(b[0:], xattrMagic)
	le.PutUint32(b[4:], 1) // h_refcount
	le.PutUint32(b[8:], 1) // h_blocks
	hashes := putXattrs(b, xattrBlockHeader, 0, list)
	// h_hash combines the entry hashes so that identical blocks can be
	// found and shared by the kernel's mbcache.
	var h uint32
	for _, eh := range hashes {
		if eh == 0 {
			h = 0
			break
		}
		h = h<<16 ^ h>>(32-16) ^ eh
	}
	le.PutUint32(b[12:], h)
	return b
}

// POSIX ACL tags (include/uapi/linux/posix_acl.h).
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclXattrVersion = 2 // the VFS (getxattr) format
	aclDiskVersion  = 1 // ext4's on-disk format
)

// aclToDisk converts a POSIX ACL from the format getxattr returns (and tar
// archives carry) to ext4's on-disk format, as the kernel does on setxattr:
// a 4-byte version 1 header, then 4-byte entries for the owner, owning
// group, mask and other, and 8-byte entries (with the id) for named users
// and groups. A value already in the disk format is kept.
func aclToDisk(v []byte) ([]byte, error) {
	le := binary.LittleEndian
	if len(v) < 4 {
		return nil, fmt.Errorf("ACL of %d bytes is too short", len(v))
	}
	switch le.Uint32(v) {
	case aclDiskVersion:
		return v, nil
	case aclXattrVersion:
	default:
		return nil, fmt.Errorf("unknown ACL version %d", le.Uint32(v))
	}
	if (len(v)-4)%8 != 0 {
		return nil, fmt.Errorf("ACL of %d bytes is not a whole number of entries", len(v))
	}
	var out bytes.Buffer
	out.Write(le.AppendUint32(nil, aclDiskVersion))
	for e := v[4:]; len(e) > 0; e = e[8:] {
		tag, perm := le.Uint16(e[0:]), le.Uint16(e[2:])
		out.Write(le.AppendUint16(nil, tag))
		out.Write(le.AppendUint16(nil, perm))
		switch tag {
		case aclUser, aclGroup:
			out.Write(e[4:8])
		case aclUserObj, aclGroupObj, aclMask, aclOther:
		default:
			return nil, fmt.Errorf("unknown ACL entry tag %#x", tag)
		}
	}
	return out.Bytes(), nil
}
