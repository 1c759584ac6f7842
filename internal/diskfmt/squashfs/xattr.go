package squashfs

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// The xattr table (squashfs.rst 3.8, squashfs_fs.h struct squashfs_xattr_*,
// squashfs-tools-ng format.txt 10):
//
//   - key/value metadata blocks: per inode a list of entries
//     {u16 type, u16 name_size, name without prefix, u32 value_size, value},
//     where type is the namespace (0 user., 1 trusted., 2 security.);
//   - xattr id metadata blocks: 16-byte records {u64 ref to the list in the
//     key/value blocks, u32 count, u32 size of the list};
//   - at xattr_id_table_start: {u64 start of the key/value blocks,
//     u32 number of ids, u32 unused}, then the u64 positions of the id
//     blocks. The kernel requires this index to end exactly at bytes_used,
//     so the xattr table comes last.
//
// Inodes refer to a list by its 32-bit id. Identical sets share one list.
// Values are always stored inline: the out-of-line form (type bit 0x100)
// only saves space for values repeated across different sets.
const (
	xattrUser     = 0
	xattrTrusted  = 1
	xattrSecurity = 2
)

var xattrPrefixes = []struct {
	prefix string
	typ    uint16
}{
	{"user.", xattrUser},
	{"trusted.", xattrTrusted},
	{"security.", xattrSecurity},
}

type xattrSet struct {
	kv    []byte // encoded key/value list
	count uint32
}

type xattrTable struct {
	ids   []xattrSet
	index map[string]uint32 // encoded list -> id
}

func newXattrTable() *xattrTable {
	return &xattrTable{index: map[string]uint32{}}
}

// add encodes a set of xattrs and returns its id (noXattr when empty after
// leaving out the namespaces squashfs cannot store, reported in skipped).
// Entries are sorted by name, so equal sets encode identically whatever
// the map order.
func (t *xattrTable) add(x map[string][]byte) (id uint32, skipped int, err error) {
	if len(x) == 0 {
		return noXattr, 0, nil
	}
	names := make([]string, 0, len(x))
	for n := range x {
		names = append(names, n)
	}
	sort.Strings(names)
	var kv []byte
	var count uint32
	for _, name := range names {
		typ, suffix, ok := splitXattrName(name)
		if !ok {
			skipped++
			continue
		}
		if suffix == "" || len(suffix) > 0xffff {
			return 0, 0, fmt.Errorf("xattr %q: invalid name", name)
		}
		val := x[name]
		if uint64(len(val)) > 0xffffffff {
			return 0, 0, fmt.Errorf("xattr %q: value too large", name)
		}
		kv = binary.LittleEndian.AppendUint16(kv, typ)
		kv = binary.LittleEndian.AppendUint16(kv, uint16(len(suffix)))
		kv = append(kv, suffix...)
		kv = binary.LittleEndian.AppendUint32(kv, uint32(len(val)))
		kv = append(kv, val...)
		count++
	}
	if count == 0 {
		return noXattr, skipped, nil
	}
	if id, ok := t.index[string(kv)]; ok {
		return id, skipped, nil
	}
	if len(t.ids) == noXattr {
		return 0, 0, fmt.Errorf("too many distinct xattr sets")
	}
	id = uint32(len(t.ids))
	t.ids = append(t.ids, xattrSet{kv: kv, count: count})
	t.index[string(kv)] = id
	return id, skipped, nil
}

func splitXattrName(name string) (uint16, string, bool) {
	for _, p := range xattrPrefixes {
		if s, ok := strings.CutPrefix(name, p.prefix); ok {
			return p.typ, s, true
		}
	}
	return 0, "", false
}

// encode returns the xattr table as written at absolute position base and
// the position of its header (the superblock's xattr_id_table_start).
func (t *xattrTable) encode(c compressor, base int64) (data []byte, headerPos int64, err error) {
	kvw := newMetaWriter(c)
	records := make([]byte, 0, 16*len(t.ids))
	for _, s := range t.ids {
		records = binary.LittleEndian.AppendUint64(records, kvw.ref())
		records = binary.LittleEndian.AppendUint32(records, s.count)
		records = binary.LittleEndian.AppendUint32(records, uint32(len(s.kv)))
		kvw.write(s.kv)
	}
	kv, err := kvw.finish()
	if err != nil {
		return nil, 0, fmt.Errorf("xattr table: %w", err)
	}
	idw := newMetaWriter(c)
	idw.write(records)
	idBlocks, err := idw.finish()
	if err != nil {
		return nil, 0, fmt.Errorf("xattr id table: %w", err)
	}
	idBase := base + int64(len(kv))
	headerPos = idBase + int64(len(idBlocks))
	data = make([]byte, 0, len(kv)+len(idBlocks)+16+8*len(idw.starts))
	data = append(data, kv...)
	data = append(data, idBlocks...)
	data = binary.LittleEndian.AppendUint64(data, uint64(base))
	data = binary.LittleEndian.AppendUint32(data, uint32(len(t.ids)))
	data = binary.LittleEndian.AppendUint32(data, 0)
	for _, s := range idw.starts {
		data = binary.LittleEndian.AppendUint64(data, uint64(idBase)+uint64(s))
	}
	return data, headerPos, nil
}
