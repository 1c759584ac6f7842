package fstree

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// DiffOptions leave out of Diff what a format or a reader cannot keep.
type DiffOptions struct {
	IgnoreOwners bool // UID and GID
	IgnoreTimes  bool // every ModTime
	// IgnoreSymlinkTimes leaves out symlinks' own ModTime (unsquashfs
	// does not set them when extracting).
	IgnoreSymlinkTimes bool
	IgnoreXattrs       bool
	// Xattr, when set, limits the compared attributes, on both sides, to
	// the names it accepts: the namespaces a format stores.
	Xattr func(name string) bool
	// IgnoreHardlinks leaves out which names are one inode.
	IgnoreHardlinks bool
}

// Diff compares the tree got (an image read back) with want (what was
// written) and returns their differences, one human-readable line each
// ("/etc/hosts: size 3, want 4"); none means equal. It compares names,
// types and permission bits (Mode), owners, modification times, sizes
// and content of regular files, symlink targets, device numbers, xattrs
// and hardlink groups: which names share a LinkID, whatever the LinkIDs
// (a name with a LinkID of its own is not hardlinked). Children are
// compared by name, in any order; root names are ignored.
func Diff(want, got *Node, o DiffOptions) []string {
	d := &differ{o: o, wantLinks: map[uint64][]string{}, gotLinks: map[uint64][]string{}}
	d.node("/", want, got)
	if !o.IgnoreHardlinks {
		// Only the groups that differ, described by their paths.
		w, g := linkGroups(d.wantLinks), linkGroups(d.gotLinks)
		onlyW := slices.DeleteFunc(slices.Clone(w), func(s string) bool { return slices.Contains(g, s) })
		onlyG := slices.DeleteFunc(g, func(s string) bool { return slices.Contains(w, s) })
		if len(onlyW) > 0 || len(onlyG) > 0 {
			d.add("hardlinks %s, want %s", orNone(onlyG), orNone(onlyW))
		}
	}
	return d.out
}

// Compare is Diff as an error: nil when the trees are equal, else one
// listing the first differences.
func Compare(want, got *Node, o DiffOptions) error {
	const show = 20
	diffs := Diff(want, got, o)
	switch {
	case len(diffs) == 0:
		return nil
	case len(diffs) > show:
		diffs = append(diffs[:show:show], fmt.Sprintf("... and %d more", len(diffs)-show))
	}
	return errors.New(strings.Join(diffs, "\n"))
}

type differ struct {
	o                   DiffOptions
	out                 []string
	wantLinks, gotLinks map[uint64][]string
	bufs                [2][]byte // content comparison, allocated once
}

func (d *differ) add(format string, args ...any) {
	d.out = append(d.out, fmt.Sprintf(format, args...))
}

func (d *differ) node(p string, want, got *Node) {
	if want.Mode != got.Mode {
		d.add("%s: mode %v, want %v", p, got.Mode, want.Mode)
	}
	if !d.o.IgnoreOwners && (want.UID != got.UID || want.GID != got.GID) {
		d.add("%s: owner %d:%d, want %d:%d", p, got.UID, got.GID, want.UID, want.GID)
	}
	symlink := want.Mode.Type() == fs.ModeSymlink
	if !d.o.IgnoreTimes && !(symlink && d.o.IgnoreSymlinkTimes) && want.ModTime != got.ModTime {
		d.add("%s: mtime %d, want %d", p, got.ModTime, want.ModTime)
	}
	if !d.o.IgnoreXattrs {
		if w, g := d.xattrs(want.Xattrs), d.xattrs(got.Xattrs); !slices.Equal(w, g) {
			d.add("%s: xattrs %q, want %q", p, g, w)
		}
	}
	if !want.Mode.IsDir() && want.LinkID != 0 {
		d.wantLinks[want.LinkID] = append(d.wantLinks[want.LinkID], p)
	}
	if !got.Mode.IsDir() && got.LinkID != 0 {
		d.gotLinks[got.LinkID] = append(d.gotLinks[got.LinkID], p)
	}
	if want.Mode.Type() != got.Mode.Type() {
		return
	}
	switch want.Mode.Type() {
	case 0:
		if want.Size != got.Size {
			d.add("%s: size %d, want %d", p, got.Size, want.Size)
		} else if err := d.sameContent(want, got); err != nil {
			d.add("%s: %v", p, err)
		}
	case fs.ModeSymlink:
		if want.Target != got.Target {
			d.add("%s: target %q, want %q", p, got.Target, want.Target)
		}
	case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
		if want.DevMajor != got.DevMajor || want.DevMinor != got.DevMinor {
			d.add("%s: device %d:%d, want %d:%d", p, got.DevMajor, got.DevMinor, want.DevMajor, want.DevMinor)
		}
	case fs.ModeDir:
		d.children(p, want, got)
	}
}

// children compares two directories' entries by name: missing,
// unexpected, and those in both.
func (d *differ) children(p string, want, got *Node) {
	byName := func(a, b *Node) int { return strings.Compare(a.Name, b.Name) }
	w, g := slices.SortedFunc(slices.Values(want.Children), byName), slices.SortedFunc(slices.Values(got.Children), byName)
	join := func(name string) string { return strings.TrimSuffix(p, "/") + "/" + name }
	for len(w) > 0 || len(g) > 0 {
		switch {
		case len(g) == 0 || len(w) > 0 && w[0].Name < g[0].Name:
			d.add("%s: missing", join(w[0].Name))
			w = w[1:]
		case len(w) == 0 || g[0].Name < w[0].Name:
			d.add("%s: unexpected entry", join(g[0].Name))
			g = g[1:]
		default:
			d.node(join(w[0].Name), w[0], g[0])
			w, g = w[1:], g[1:]
		}
	}
}

// xattrs renders the compared attributes as sorted name=hex strings.
func (d *differ) xattrs(m map[string][]byte) []string {
	var s []string
	for k, v := range m {
		if d.o.Xattr == nil || d.o.Xattr(k) {
			s = append(s, fmt.Sprintf("%s=%x", k, v))
		}
	}
	slices.Sort(s)
	return s
}

// sameContent compares two regular files of the same Size.
func (d *differ) sameContent(want, got *Node) error {
	if want.Size == 0 {
		return nil
	}
	open := func(n *Node, what string) (io.ReadCloser, error) {
		if n.Open == nil {
			return nil, fmt.Errorf("%s content: no Open function", what)
		}
		rc, err := n.Open()
		if err != nil {
			return nil, fmt.Errorf("opening %s content: %w", what, err)
		}
		return rc, nil
	}
	rw, err := open(want, "wanted")
	if err != nil {
		return err
	}
	defer rw.Close()
	rg, err := open(got, "read back")
	if err != nil {
		return err
	}
	defer rg.Close()
	if d.bufs[0] == nil {
		d.bufs = [2][]byte{make([]byte, 1<<20), make([]byte, 1<<20)}
	}
	bw, bg := d.bufs[0], d.bufs[1]
	for off := int64(0); ; {
		nw, ew := io.ReadFull(rw, bw)
		ng, eg := io.ReadFull(rg, bg)
		if i := mismatch(bw[:nw], bg[:ng]); i >= 0 {
			return fmt.Errorf("content differs at byte %d", off+int64(i))
		}
		off += int64(nw)
		for _, e := range []struct {
			err  error
			what string
		}{{ew, "wanted"}, {eg, "read back"}} {
			if e.err != nil && e.err != io.EOF && e.err != io.ErrUnexpectedEOF {
				return fmt.Errorf("reading %s content: %w", e.what, e.err)
			}
		}
		if ew != nil || eg != nil {
			return nil
		}
	}
}

// mismatch returns the first index where a and b differ (one ending
// early counts), or -1.
func mismatch(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func orNone(groups []string) string {
	if len(groups) == 0 {
		return "(none)"
	}
	return strings.Join(groups, " ")
}

// linkGroups describes hardlink groups of more than one name, whatever
// their LinkIDs, sorted.
func linkGroups(m map[uint64][]string) []string {
	var groups []string
	for _, paths := range m {
		if len(paths) > 1 {
			groups = append(groups, strings.Join(slices.Sorted(slices.Values(paths)), "="))
		}
	}
	slices.Sort(groups)
	return groups
}
