package quickrand

import (
	"bytes"
	"testing"
)

func TestRead(t *testing.T) {
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	Read(a)
	Read(b)
	if bytes.Equal(a, b) {
		t.Fatal("two reads gave the same bytes")
	}
	// Every byte value appears in 64 KiB of random bytes; a short or
	// zeroed fill would not have them all.
	var seen [256]bool
	for _, c := range a[len(a)-4096:] {
		seen[c] = true
	}
	for v, ok := range seen {
		if !ok {
			t.Fatalf("byte %#x never appears in the last 4 KiB: the buffer was not filled", v)
		}
	}
}
