// Package grubenv reads and writes GRUB environment blocks (grubenv files):
// the "# GRUB Environment Block" header, "name=value" lines, padded with '#'
// to exactly 1024 bytes. GRUB's save_env rewrites such a file in place and
// refuses one of any other size, so every block this package writes has
// that size.
package grubenv

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"
)

const (
	// Size is the size of every environment block.
	Size   = 1024
	header = "# GRUB Environment Block\n"
)

// Encode returns the block holding vars, names sorted so the same
// variables always give the same bytes.
func Encode(vars map[string]string) ([]byte, error) {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString(header)
	for _, k := range names {
		v := vars[k]
		if k == "" || strings.ContainsAny(k, "=\n") {
			return nil, fmt.Errorf("grubenv: bad variable name %q", k)
		}
		// GRUB escapes these on save; plain values are all Kairos uses.
		if strings.ContainsAny(v, "\n\\") {
			return nil, fmt.Errorf("grubenv: value of %s contains a newline or backslash", k)
		}
		fmt.Fprintf(&b, "%s=%s\n", k, v)
	}
	if b.Len() > Size {
		return nil, fmt.Errorf("grubenv: %d bytes of variables do not fit in a %d-byte block", b.Len(), Size)
	}
	b.Write(bytes.Repeat([]byte("#"), Size-b.Len()))
	return b.Bytes(), nil
}

// Decode reads a block: header first, then name=value lines up to the
// padding.
func Decode(data []byte) (map[string]string, error) {
	if !bytes.HasPrefix(data, []byte(header)) {
		return nil, fmt.Errorf("grubenv: no %q header", strings.TrimSpace(header))
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(data[len(header):]), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("grubenv: bad line %q", line)
		}
		vars[k] = v
	}
	return vars, nil
}

// Update sets variables in the block at path (created when missing); an
// empty value removes the variable. The file is rewritten in place and
// synced: GRUB reads it at the next boot.
func Update(path string, set map[string]string) error {
	vars := map[string]string{}
	if data, err := os.ReadFile(path); err == nil {
		if vars, err = Decode(data); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !os.IsNotExist(err) {
		return err
	}
	for k, v := range set {
		if v == "" {
			delete(vars, k)
		} else {
			vars[k] = v
		}
	}
	data, err := Encode(vars)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(Size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
