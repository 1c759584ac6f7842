package squashfs

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"fmt"
	"io"
	"math/rand"
	"os"
	"testing"
)

// deflateSamples are inputs with very different statistics: empty, tiny,
// zeros (longest matches at distance 1), random (stored blocks), text,
// an executable (this test binary), mixtures and sizes around the block
// and metadata sizes.
func deflateSamples(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewSource(1))
	random := make([]byte, 300000)
	rng.Read(random)
	var text bytes.Buffer
	for text.Len() < 1<<20 {
		fmt.Fprintf(&text, "line %d: the quick brown fox %d jumps over %x\n", text.Len(), rng.Intn(1000), rng.Int63())
	}
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(exe) > 1<<20 {
		exe = exe[len(exe)/3 : len(exe)/3+1<<20]
	}
	mixed := append(append(append([]byte{}, text.Bytes()[:100000]...), random[:70000]...), make([]byte, 70000)...)
	skewed := make([]byte, 200000) // two symbols, many short runs
	for i := range skewed {
		if rng.Intn(50) == 0 {
			skewed[i] = 'b'
		} else {
			skewed[i] = 'a'
		}
	}
	return map[string][]byte{
		"empty": {}, "one": {42}, "two": {1, 2}, "three": []byte("abc"),
		"zeros":  make([]byte, 1<<20),
		"random": random, "text": text.Bytes(), "exe": exe, "mixed": mixed, "skewed": skewed,
		"metadata": exe[:8192], "alphabet": bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz"), 5000),
	}
}

func TestDeflateRoundTrip(t *testing.T) {
	samples := deflateSamples(t)
	for level := 1; level <= 9; level++ {
		d := newDeflater(level)
		var out []byte
		for name, in := range samples {
			var err error
			if out, err = d.compress(out, in); err != nil {
				t.Fatal(err)
			}
			zr, err := zlib.NewReader(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("level %d %s: %v", level, name, err)
			}
			got, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(got, in) {
				t.Fatalf("level %d %s: round trip failed (%v, %d bytes back of %d)", level, name, err, len(got), len(in))
			}
			switch name {
			case "exe", "metadata":
				// Slices of this test binary: how well they compress
				// depends on what the linker put there (8 KiB of machine
				// code is about 54% with zlib -9), so the reference is the
				// standard library at the same level on the same bytes,
				// not a ratio.
				if ref := flateSize(t, in, level); len(out) > ref+ref/20+64 {
					t.Errorf("level %d %s: %d -> %d bytes, compress/flate makes %d", level, name, len(in), len(out), ref)
				}
			case "random":
			default:
				if len(in) > 1000 && len(out) > len(in)/2 {
					t.Errorf("level %d %s: %d -> %d bytes, poor compression", level, name, len(in), len(out))
				}
			}
			if name == "random" && len(out) > len(in)+len(in)/1000+64 {
				t.Errorf("level %d random: %d -> %d, stored blocks not used", level, len(in), len(out))
			}
		}
	}
}

// flateSize is the size of in compressed by compress/flate at level.
func flateSize(t *testing.T, in []byte, level int) int {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(in); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Len()
}
