package squashfs

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"testing"
)

// deflateFuzzSeeds are the starting points of FuzzDeflate. The large ones
// sit on the encoder's limits: 16383 tokens per block (dfBlockSyms), the
// 32 KiB window and its last usable distance (dfMaxDist), 258-byte
// matches, and the 4096-byte distance past which 3-byte matches are
// dropped (dfTooFar). (A stored block split at 65535 bytes is out of
// reach: a block that long is mostly matches, which storing never beats.)
func deflateFuzzSeeds() [][]byte {
	rng := rand.New(rand.NewSource(7))
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	var text bytes.Buffer
	for text.Len() < 100000 {
		fmt.Fprintf(&text, "%d: the quick brown fox jumps over the lazy dog %x\n", text.Len(), rng.Intn(5000))
	}
	// period returns n bytes repeating a random block of p bytes: every
	// match is at distance p, just inside or just outside the window.
	period := func(p, n int) []byte {
		unit := random(p)
		out := make([]byte, 0, n+p)
		for len(out) < n {
			out = append(out, unit...)
		}
		return out[:n]
	}
	// far3 repeats 3-byte groups at distances on both sides of dfTooFar.
	far3 := random(12000)
	copy(far3[dfTooFar:], far3[:3])
	copy(far3[2*dfTooFar+1:], far3[dfTooFar+500:dfTooFar+503])
	// A random block whose middle reappears later, so a single block mixes
	// stored-worthy and matching data.
	mixed := random(70000)
	copy(mixed[50000:], mixed[20000:30000])
	return [][]byte{
		{},
		{0},
		{0xff},
		[]byte("ab"),
		[]byte("abc"),
		[]byte("aaaa"),
		bytes.Repeat([]byte{0}, 259),
		bytes.Repeat([]byte{'a'}, 1000),
		bytes.Repeat([]byte("ab"), 700),
		append(bytes.Repeat([]byte{'x'}, 300), random(300)...),
		random(100),
		[]byte("Hello, squashfs! Hello, squashfs! Hello, squashfs!\n"),
		text.Bytes()[:5000],
		text.Bytes(),               // several 16383-token blocks
		noRepeats(dfBlockSyms),     // exactly one full block of literals, then an empty last block
		noRepeats(dfBlockSyms + 1), // one literal in the last block
		noRepeats(2 * dfBlockSyms),
		random(70000), // stored blocks, past the window and 64 KiB
		make([]byte, 1<<16+1),
		period(dfMaxDist, 70000),   // matches at the largest distance used
		period(dfWindow, 70000),    // one beyond: no match at that distance
		period(dfWindow+1, 70000),  // two beyond
		period(dfMaxMatch+1, 5000), // matches just over the longest length
		far3,
		mixed,
	}
}

// noRepeats returns n bytes (n < 1<<15) in which no 3-byte sequence
// occurs twice, so the encoder finds no match and writes one literal token
// per byte: the bytes of a big-endian 16-bit counter. A 3-byte window
// starts either on a counter value's high byte, (h, l, next h), or on its
// low byte, (l, next h, next l); below 1<<14 values no two windows agree.
// Random bytes would not do: 16383 of them hold a few 3-byte repeats, and
// the block would not end exactly at the end of the input.
func noRepeats(n int) []byte {
	out := make([]byte, 0, n+1)
	for v := 0; len(out) < n; v++ {
		out = append(out, byte(v>>8), byte(v))
	}
	return out[:n]
}

// zlibBound is the most the encoder may produce for n input bytes. Every
// block is written stored, fixed or dynamic, whichever is smallest, so a
// stream is never larger than storing its blocks: per block of L bytes,
// L/65535+1 stored blocks of 3 header bits, at most 7 padding bits and
// LEN/NLEN (32 bits) each, around the data. A block only ends early when
// it holds dfBlockSyms tokens, which cover at least dfBlockSyms bytes, so
// there are at most n/dfBlockSyms+1 blocks. Plus the zlib header (2),
// the adler32 (4) and the final byte's padding.
func zlibBound(n int) int {
	storedBlocks := n/dfBlockSyms + 1 + n/0xffff
	return 2 + n + (storedBlocks*(3+7+32)+7)/8 + 4
}

// FuzzDeflate checks the squashfs zlib encoder against the standard
// library's decoder at every level it offers. Beyond the round trip it
// checks what squashfs relies on: the stream ends where the decoder stops
// (the image records each block's compressed size), the header is the one zlib
// writes for the level, the output stays within zlibBound, and a
// compressor reused across blocks, as every worker's is, writes exactly
// what a fresh one writes (images must be reproducible).
//
// The level is an input of its own rather than a loop over all nine: one
// execution then costs three compressions instead of 27, and minimising a
// large input (the "0 execs/sec" stretches) ends nine times sooner. Every
// seed is added at every level, so plain go test covers them all.
func FuzzDeflate(f *testing.F) {
	for _, s := range deflateFuzzSeeds() {
		for level := 1; level <= 9; level++ {
			f.Add(uint8(level), s)
		}
	}
	f.Fuzz(func(t *testing.T, levelByte uint8, in []byte) {
		level := 1 + int(levelByte)%9
		out, err := newDeflater(level).compress(nil, in)
		if err != nil {
			t.Fatalf("level %d: %v", level, err)
		}
		checkZlibStream(t, level, in, out)

		// The reused compressor first compresses the input reversed: the
		// same length and byte values, so its hash heads and chain links
		// cover the same positions but describe other data.
		dirty := slices.Clone(in)
		slices.Reverse(dirty)
		reused := newDeflater(level)
		buf, err := reused.compress(nil, dirty)
		if err != nil {
			t.Fatalf("level %d, first block: %v", level, err)
		}
		// Compress into the previous output, as the pipeline recycles
		// buffers: stale bytes in dst must not show through.
		again, err := reused.compress(buf, in)
		if err != nil {
			t.Fatalf("level %d, second block: %v", level, err)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("level %d: a reused compressor wrote %d bytes, a fresh one %d (first difference at %d)",
				level, len(again), len(out), firstByteDiff(again, out))
		}
	})
}

// checkZlibStream decodes out with compress/zlib (which checks the header
// check bits and the adler32) and compares it with in.
func checkZlibStream(t *testing.T, level int, in, out []byte) {
	t.Helper()
	if len(out) < 2 {
		t.Fatalf("level %d: %d-byte stream", level, len(out))
	}
	// FLEVEL as zlib's deflate sets it; CM 8 with a 32 KiB window.
	var wantFLevel byte
	switch {
	case level == 1:
		wantFLevel = 0
	case level < 6:
		wantFLevel = 1
	case level == 6:
		wantFLevel = 2
	default:
		wantFLevel = 3
	}
	if out[0] != 0x78 || out[1]>>6 != wantFLevel {
		t.Errorf("level %d: header %#02x %#02x, want 0x78 and FLEVEL %d", level, out[0], out[1], wantFLevel)
	}
	if bound := zlibBound(len(in)); len(out) > bound {
		t.Errorf("level %d: %d bytes -> %d, more than storing them (%d)", level, len(in), len(out), bound)
	}
	// A bytes.Reader is an io.ByteReader, so the decoder reads no further
	// than the stream's end: anything left over is trailing garbage.
	r := bytes.NewReader(out)
	zr, err := zlib.NewReader(r)
	if err != nil {
		t.Fatalf("level %d: %v", level, err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("level %d: decoding %d bytes of %d: %v", level, len(out), len(in), err)
	}
	if !bytes.Equal(got, in) {
		t.Fatalf("level %d: %d bytes decoded, %d in, first difference at %d", level, len(got), len(in), firstByteDiff(got, in))
	}
	if r.Len() != 0 {
		t.Fatalf("level %d: %d bytes after the end of the stream", level, r.Len())
	}
}

func firstByteDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
