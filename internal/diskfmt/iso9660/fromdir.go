package iso9660

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FromDir builds a tree from the host directory root, recording each
// entry's permissions, owner and modification time as they are on the host.
// Regular files are read when the image is written. Device files, FIFOs and
// sockets are refused (a live ISO has none); hard links become copies.
func FromDir(root string) (*Dir, error) {
	st, err := os.Lstat(root)
	if err != nil {
		return nil, fmt.Errorf("iso9660: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("iso9660: %s is not a directory", root)
	}
	d := NewDir(hostMeta(st))
	if err := fillDir(d, root); err != nil {
		return nil, err
	}
	return d, nil
}

func fillDir(d *Dir, dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("iso9660: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		st, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("iso9660: %w", err)
		}
		m := hostMeta(st)
		var n Node
		switch t := st.Mode().Type(); {
		case t == fs.ModeDir:
			sub := NewDir(m)
			if err := fillDir(sub, p); err != nil {
				return err
			}
			n = sub
		case t == fs.ModeSymlink:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("iso9660: %w", err)
			}
			n = &Symlink{Meta: m, Target: target}
		case t.IsRegular():
			size := st.Size()
			n = &File{Meta: m, Size: size, Open: openHost(p)}
		default:
			return fmt.Errorf("iso9660: %s: file type %v is not supported (only directories, regular files and symlinks)", p, t)
		}
		if err := d.Add(e.Name(), n); err != nil {
			return fmt.Errorf("iso9660: %s: %w", p, err)
		}
	}
	return nil
}

func hostMeta(st fs.FileInfo) Meta {
	uid, gid := owner(st)
	return Meta{
		Mode:    st.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
		UID:     uid,
		GID:     gid,
		ModTime: st.ModTime(),
	}
}

func openHost(p string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(p) }
}
