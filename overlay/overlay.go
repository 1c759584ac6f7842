// Package overlay embeds the files Kairos adds to every image and to its
// media, as real files:
//
//	rootfs/             copied over every image root
//	init/<init>/        added when the flavor's init system is <init> (systemd, openrc)
//	initrd/<tool>/      added when the flavor's initrd tool is <tool> (dracut, mkinitfs)
//	k3s/<init>/         added to the standard variant: k3s services for <init>
//	build/              scripts run inside BuildKit while building; never shipped
//	iso/                live media files (grub menus)
//
// File modes are not kept by go:embed; the modes file lists them.
package overlay

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:rootfs all:init all:initrd all:k3s all:build all:iso modes
var files embed.FS

// File is one regular file of the overlay.
type File struct {
	Path string // relative to the tree root, slash-separated, no leading slash
	Mode fs.FileMode
	Data []byte
}

type modeRule struct {
	pattern string
	mode    fs.FileMode
}

// Tree returns the regular files below one of the overlay directories
// ("rootfs", "init/systemd", "build"...), sorted by path, with their modes
// applied. A directory that does not exist is an error: callers name trees
// from flavor data, and a typo there must not silently ship nothing.
func Tree(top string) ([]File, error) {
	rules, err := modes()
	if err != nil {
		return nil, err
	}
	var out []File
	err = fs.WalkDir(files, top, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, File{Path: strings.TrimPrefix(p, top+"/"), Mode: modeOf(rules, p), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading overlay %s: %w", top, err)
	}
	return out, nil
}

func modeOf(rules []modeRule, p string) fs.FileMode {
	for _, r := range rules {
		if ok, _ := path.Match(r.pattern, p); ok {
			return r.mode
		}
	}
	return 0o644
}

// modes parses the modes file once; Tree is called for every tree of a build.
var modes = sync.OnceValues(readModes)

func readModes() ([]modeRule, error) {
	data, err := files.ReadFile("modes")
	if err != nil {
		return nil, err
	}
	var rules []modeRule
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("overlay/modes:%d: want \"<mode> <pattern>\", got %q", n, line)
		}
		m, err := strconv.ParseUint(fields[0], 8, 32)
		if err != nil {
			return nil, fmt.Errorf("overlay/modes:%d: bad mode %q: %w", n, fields[0], err)
		}
		if _, err := path.Match(fields[1], ""); err != nil {
			return nil, fmt.Errorf("overlay/modes:%d: bad pattern %q: %w", n, fields[1], err)
		}
		rules = append(rules, modeRule{pattern: fields[1], mode: fs.FileMode(m)})
	}
	return rules, sc.Err()
}
