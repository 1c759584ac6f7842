// Package mounttab reads the kernel's table of mounts (/proc/self/mounts,
// fstab(5) format), the one reader every part of the agent uses: which
// device is mounted where, read-only or not, and what is mounted below a
// directory.
package mounttab

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Path is the running system's table.
const Path = "/proc/self/mounts"

// Mount is one line of the table, its paths unescaped.
type Mount struct {
	Source, Target, FSType string
	Options                []string
}

// Device is the mount's source as its device node: an opened encrypted
// partition is mounted as /dev/mapper/<name>, a link to the dm-N that
// udev's by-label links point to.
func (m Mount) Device() string {
	if strings.HasPrefix(m.Source, "/dev/mapper/") {
		if dev, err := filepath.EvalSymlinks(m.Source); err == nil {
			return dev
		}
	}
	return m.Source
}

// ReadOnly says whether the mount is read-only.
func (m Mount) ReadOnly() bool {
	for _, o := range m.Options {
		if o == "ro" {
			return true
		}
	}
	return false
}

// Read returns the table at path (Path on a node), in mount order.
func Read(path string) ([]Mount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		m := Mount{Source: Unescape(fields[0]), Target: Unescape(fields[1])}
		if len(fields) > 2 {
			m.FSType = fields[2]
		}
		if len(fields) > 3 {
			m.Options = strings.Split(fields[3], ",")
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

// Below returns the mount points strictly below dir, relative to it
// ("/proc", "/etc/hosts").
func Below(mounts []Mount, dir string) map[string]bool {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	out := map[string]bool{}
	for _, m := range mounts {
		if rel, ok := strings.CutPrefix(m.Target, prefix); ok && rel != "" {
			out["/"+rel] = true
		}
	}
	return out
}

// Unescape undoes the kernel's octal escapes in the table's paths (\040
// for a space, \011, \012, \134).
func Unescape(s string) string {
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
