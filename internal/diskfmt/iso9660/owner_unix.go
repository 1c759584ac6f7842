//go:build unix

package iso9660

import (
	"io/fs"
	"syscall"
)

func owner(st fs.FileInfo) (uid, gid uint32) {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Uid, s.Gid
	}
	return 0, 0
}
