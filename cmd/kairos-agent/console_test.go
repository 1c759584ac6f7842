package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The terminal the command writes to is not written a second time as a
// console: a character device is matched by its device number.
func TestSameTerminal(t *testing.T) {
	null, err := os.OpenFile("/dev/null", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if !sameTerminal(null, "/dev/null") {
		t.Error("/dev/null is not itself")
	}
	if sameTerminal(null, "/dev/zero") {
		t.Error("/dev/null is /dev/zero")
	}
	plain := filepath.Join(t.TempDir(), "f")
	f, err := os.Create(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if sameTerminal(f, plain) {
		t.Error("a regular file counts as a terminal")
	}
	if sameTerminal(&bytes.Buffer{}, "/dev/null") {
		t.Error("a buffer counts as a terminal")
	}
}
