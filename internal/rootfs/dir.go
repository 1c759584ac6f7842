package rootfs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kairos-io/kairos/internal/diskfmt/squashfs"
)

// pseudoDirs are directories of a running system whose contents are never
// part of an image: kernel and device file systems, run-time state,
// temporary files, and /host, where upgrade containers see the node's
// own root (with its secrets). They stay in the tree as empty mount
// points.
var pseudoDirs = []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/host"}

// openDir reads a root file system from a directory, which may be a
// running system's "/" (an upgrade from inside a container, say): the
// contents of pseudoDirs are left out, and so is everything mounted below
// dir (a mounted directory is kept empty, a bind-mounted file left out),
// so that the tree is the file system at dir alone, never the host's or
// the container runtime's files mounted into it.
func openDir(dir string) (*Tree, error) {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", dir, err)
	}
	mounts, err := mountsBelow(resolved, "/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", dir, err)
	}
	root, err := squashfs.DirSourceWith(resolved, squashfs.DirOptions{Prune: func(rel string) bool {
		for _, p := range pseudoDirs {
			if rel == p {
				return true
			}
		}
		return mounts[rel]
	}})
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", dir, err)
	}
	return &Tree{Root: root}, nil
}

// mountsBelow reads a mountinfo file and returns the mount points
// strictly below dir, relative to it ("/proc", "/etc/hosts").
func mountsBelow(dir, mountinfo string) (map[string]bool, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	defer f.Close()
	prefix := strings.TrimSuffix(dir, "/") + "/"
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root mount-point options ... (proc(5))
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, prefix) {
			out["/"+strings.TrimPrefix(mp, prefix)] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", mountinfo, err)
	}
	return out, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\040 for a space,
// \011, \012, \134) in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
