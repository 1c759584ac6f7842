package matrix

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// SumsFile is the release's checksum list, in sha256sum's format, of
// every file of the release directory but itself and its signature.
const SumsFile = "SHA256SUMS"

// FileSum is one file of the release.
type FileSum struct {
	Name   string `json:"name"` // relative to the release directory, with /
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// WriteSums writes dir/SHA256SUMS of Sums(dir); `sha256sum -c
// SHA256SUMS` in dir checks them.
func WriteSums(dir string) ([]FileSum, error) {
	sums, err := Sums(dir)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, s := range sums {
		fmt.Fprintf(&b, "%s  %s\n", s.SHA256, s.Name)
	}
	return sums, os.WriteFile(filepath.Join(dir, SumsFile), []byte(b.String()), 0o644)
}

// Sums hashes every regular file under dir but SHA256SUMS and its
// signature, sorted by name; symbolic links are refused (a release holds
// files).
func Sums(dir string) ([]FileSum, error) {
	var sums []FileSum
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: not a regular file", path)
		case rel == SumsFile || strings.HasPrefix(rel, SumsFile+"."):
			return nil
		case strings.ContainsAny(rel, "\n\\"):
			return fmt.Errorf("%q: a name sha256sum cannot list", rel)
		}
		s, err := HashFile(path)
		if err != nil {
			return err
		}
		s.Name = rel
		sums = append(sums, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(sums, func(a, b FileSum) int { return strings.Compare(a.Name, b.Name) })
	return sums, nil
}

// HashFile is a file's SHA-256 (hex) and size; Name is left to the caller.
func HashFile(path string) (FileSum, error) {
	f, err := os.Open(path)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return FileSum{}, fmt.Errorf("%s: %w", path, err)
	}
	return FileSum{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
