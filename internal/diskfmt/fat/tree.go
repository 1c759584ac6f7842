package fat

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// Dir is a directory of the tree to write: pure data. Entry order does not
// matter: Write sorts entries by name so that the image does not depend on
// how the tree was built.
type Dir struct {
	Entries []Entry
}

// Entry is a named file or subdirectory: exactly one of File and Dir is set.
type Entry struct {
	Name string
	File *File
	Dir  *Dir
}

// File is the content of a regular file: Data, or Size bytes read from Open
// (for large files that should not sit in memory, like a kernel or an EFI
// binary on disk).
type File struct {
	Data []byte
	Size int64
	Open func() (io.ReadCloser, error)
}

// size is the number of bytes the file will have.
func (f *File) size() int64 {
	if f.Open == nil {
		return int64(len(f.Data))
	}
	return f.Size
}

// open returns a reader of the file's content.
func (f *File) open() (io.ReadCloser, error) {
	if f.Open == nil {
		return io.NopCloser(bytes.NewReader(f.Data)), nil
	}
	return f.Open()
}

// lookup finds an entry by name the way FAT does: case-insensitively.
func (d *Dir) lookup(name string) *Entry {
	for i := range d.Entries {
		if strings.EqualFold(d.Entries[i].Name, name) {
			return &d.Entries[i]
		}
	}
	return nil
}

// Mkdir returns the directory at p (slash-separated, relative to d),
// creating it and its parents as needed, like mkdir -p.
func (d *Dir) Mkdir(p string) (*Dir, error) {
	cur := d
	for _, name := range splitPath(p) {
		e := cur.lookup(name)
		switch {
		case e == nil:
			sub := &Dir{}
			cur.Entries = append(cur.Entries, Entry{Name: name, Dir: sub})
			cur = sub
		case e.Dir != nil:
			cur = e.Dir
		default:
			return nil, fmt.Errorf("mkdir %s: %s is a file", p, e.Name)
		}
	}
	return cur, nil
}

// AddFile adds a file holding data at p, creating parent directories.
func (d *Dir) AddFile(p string, data []byte) error {
	return d.add(p, &File{Data: data})
}

// AddFileFrom adds a file of size bytes at p whose content open returns at
// write time, creating parent directories.
func (d *Dir) AddFileFrom(p string, size int64, open func() (io.ReadCloser, error)) error {
	return d.add(p, &File{Size: size, Open: open})
}

func (d *Dir) add(p string, f *File) error {
	parts := splitPath(p)
	if len(parts) == 0 {
		return fmt.Errorf("add file: empty path")
	}
	parent, err := d.Mkdir(path.Join(parts[:len(parts)-1]...))
	if err != nil {
		return fmt.Errorf("add file %s: %w", p, err)
	}
	name := parts[len(parts)-1]
	if e := parent.lookup(name); e != nil {
		return fmt.Errorf("add file %s: %s already exists", p, e.Name)
	}
	parent.Entries = append(parent.Entries, Entry{Name: name, File: f})
	return nil
}

func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return parts
}

// FromFS builds a tree from the directory root of fsys (e.g. os.DirFS of a
// staging directory). Files are opened only when the image is written.
// Anything but regular files and directories (symlinks, devices) is an
// error: FAT cannot represent it.
func FromFS(fsys fs.FS, root string) (*Dir, error) {
	top := &Dir{}
	err := fs.WalkDir(fsys, root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		if root == "." {
			rel = p
		}
		switch {
		case p == root:
			return nil
		case de.IsDir():
			_, err := top.Mkdir(rel)
			return err
		case de.Type().IsRegular():
			info, err := de.Info()
			if err != nil {
				return err
			}
			return top.AddFileFrom(rel, info.Size(), func() (io.ReadCloser, error) { return fsys.Open(p) })
		default:
			return fmt.Errorf("%s: %s is not a regular file or directory", p, de.Type())
		}
	})
	if err != nil {
		return nil, fmt.Errorf("fat: reading tree: %w", err)
	}
	return top, nil
}
