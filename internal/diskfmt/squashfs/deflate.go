package squashfs

import (
	"encoding/binary"
	"hash/adler32"
	"math/bits"
	"sort"
)

// A zlib-format (RFC 1950 wrapper around RFC 1951 deflate) encoder for
// whole blocks, modeled on zlib's deflate_slow: hash chains over 3-byte
// prefixes, lazy match evaluation, zlib's per-level search parameters, and
// blocks of at most 16383 symbols, each stored, fixed or dynamic, whichever
// is smallest.
//
// Why not compress/flate or klauspost/compress/flate: both only find
// matches of 4 bytes or more. On executables and libraries, the bulk of a
// root file system, the 3-byte matches zlib also uses are worth about 3%
// of the compressed size, and mksquashfs (zlib) is the size reference.
// Since squashfs compresses each block on its own, the encoder works on
// the whole block in memory: no sliding window, and chains are indexed by
// absolute position.

const (
	dfMinMatch = 3
	dfMaxMatch = 258
	dfWindow   = 32768 // RFC 1951 window
	dfWMask    = dfWindow - 1
	// dfMaxDist stops one short of the window so that the chain link of
	// every candidate is still in the window-sized prev table (the slot of
	// position p is reused by p+32768).
	dfMaxDist   = dfWindow - 1
	dfTooFar    = 4096 // zlib: a 3-byte match farther than this is not worth it
	dfHashBits  = 15
	dfBlockSyms = 16383 // zlib's block size with the default memLevel 8
	dfNoPos     = -1
)

// dfParams are zlib's configuration_table entries.
type dfParams struct {
	good  int // shorten the search when the previous match is this long
	lazy  int // do not search when the previous match is this long
	nice  int // stop searching at a match this long
	chain int // longest hash chain walked
}

var dfLevels = [10]dfParams{
	{}, // level 0 (stored) is not offered
	{4, 4, 8, 4},
	{4, 5, 16, 8},
	{4, 6, 32, 32},
	{4, 4, 16, 16},
	{8, 16, 32, 32},
	{8, 16, 128, 128},
	{8, 32, 128, 256},
	{32, 128, 258, 1024},
	{32, 258, 258, 4096},
}

// RFC 1951 3.2.5 length and distance codes.
var (
	dfLenBase   = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	dfLenExtra  = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dfDistBase  = [30]uint32{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dfDistExtra = [30]uint8{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}
	// order of the code length code lengths in a dynamic block header
	dfCLOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

	dfLenCode        [256]uint8            // match length - 3 -> length code - 257
	dfDistCode       [dfWindow]uint8       // distance - 1 -> distance code
	dfFixedLit       = dfFixedLitLengths() // fixed Huffman lengths, RFC 1951 3.2.6
	dfFixedLitCodes  [288]uint16
	dfFixedDistCodes [30]uint16
	dfFixedDist      [30]uint8
	dfCLExtra        = [19]int{16: 2, 17: 3, 18: 7} // extra bits of the repeat codes
)

func init() {
	for c := 0; c < 28; c++ {
		for l := int(dfLenBase[c]); l < int(dfLenBase[c])+1<<dfLenExtra[c] && l <= dfMaxMatch; l++ {
			dfLenCode[l-dfMinMatch] = uint8(c)
		}
	}
	dfLenCode[dfMaxMatch-dfMinMatch] = 28
	for c := 0; c < 30; c++ {
		for d := dfDistBase[c]; d < dfDistBase[c]+1<<dfDistExtra[c]; d++ {
			dfDistCode[d-1] = uint8(c)
		}
	}
	for i := range dfFixedDist {
		dfFixedDist[i] = 5
	}
	canonicalCodes(dfFixedLit[:], dfFixedLitCodes[:])
	canonicalCodes(dfFixedDist[:], dfFixedDistCodes[:])
}

func dfFixedLitLengths() (l [288]uint8) {
	for i := range l {
		switch {
		case i < 144:
			l[i] = 8
		case i < 256:
			l[i] = 9
		case i < 280:
			l[i] = 7
		default:
			l[i] = 8
		}
	}
	return l
}

// Tokens: a literal is its byte value; a match is
// 1<<31 | (length-3)<<16 | (distance-1).
const dfMatchFlag = 1 << 31

type deflater struct {
	p      dfParams
	header [2]byte
	head   [1 << dfHashBits]int32
	prev   [dfWindow]int32 // chain links, by position & dfWMask (as zlib's prev)
	toks   []uint32
	src    []byte

	blockStart, rawEnd int // raw bytes covered by the pending tokens
	litFreq            [286]int32
	distFreq           [30]int32

	bw bitWriter
	h  huffScratch
}

func newDeflater(level int) *deflater {
	d := &deflater{p: dfLevels[level], toks: make([]uint32, 0, dfBlockSyms)}
	// RFC 1950 header: CM 8 (deflate), CINFO 7 (32 KiB window), FLEVEL as
	// zlib sets it, FCHECK so that the pair is a multiple of 31.
	flevel := 2
	switch {
	case level == 1:
		flevel = 0
	case level < 6:
		flevel = 1
	case level > 6:
		flevel = 3
	}
	cmf := uint16(0x78)
	flg := uint16(flevel << 6)
	flg += 31 - (cmf<<8|flg)%31
	d.header = [2]byte{byte(cmf), byte(flg)}
	return d
}

// compress appends the zlib stream of src to dst[:0].
func (d *deflater) compress(dst, src []byte) ([]byte, error) {
	d.bw = bitWriter{out: append(dst[:0], d.header[:]...)}
	d.src = src
	for i := range d.head {
		d.head[i] = dfNoPos
	}
	d.toks = d.toks[:0]
	d.blockStart, d.rawEnd = 0, 0
	clear(d.litFreq[:])
	clear(d.distFreq[:])
	d.lz77()
	d.flushBlock(true)
	d.bw.align()
	out := binary.BigEndian.AppendUint32(d.bw.out, adler32.Checksum(src))
	d.src = nil
	return out, nil
}

func (d *deflater) hash(i int) uint32 {
	s := d.src[i : i+3 : i+3]
	v := uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16
	return (v * 2654435761) >> (32 - dfHashBits)
}

// insert adds position i to its hash chain and returns the previous head.
func (d *deflater) insert(i int) int32 {
	h := d.hash(i)
	old := d.head[h]
	d.prev[i&dfWMask] = old
	d.head[h] = int32(i)
	return old
}

// lz77 is zlib's deflate_slow over the whole input.
func (d *deflater) lz77() {
	src := d.src
	n := len(src)
	matchLen, matchStart := dfMinMatch-1, 0
	avail := false
	for s := 0; s < n; {
		head := int32(dfNoPos)
		if n-s >= dfMinMatch {
			head = d.insert(s)
		}
		prevLen, prevMatch := matchLen, matchStart
		matchLen = dfMinMatch - 1
		if head != dfNoPos && prevLen < d.p.lazy && s-int(head) <= dfMaxDist {
			matchLen, matchStart = d.longestMatch(s, head, prevLen)
			if matchLen == dfMinMatch && s-matchStart > dfTooFar {
				matchLen = dfMinMatch - 1
			}
		}
		switch {
		case prevLen >= dfMinMatch && matchLen <= prevLen:
			// The match found at the previous position is at least as
			// good: emit it and skip over it, indexing what it covers.
			d.emitMatch(prevLen, s-1-prevMatch)
			end := s - 1 + prevLen
			for s++; s < end; s++ {
				if s <= n-dfMinMatch {
					d.insert(s)
				}
			}
			avail = false
			matchLen = dfMinMatch - 1
		case avail:
			d.emitLiteral(src[s-1])
			s++
		default:
			avail = true
			s++
		}
	}
	if avail {
		d.emitLiteral(src[n-1])
	}
}

// longestMatch walks the hash chain from cur for the longest match at s
// longer than prevLen (zlib's longest_match).
func (d *deflater) longestMatch(s int, cur int32, prevLen int) (int, int) {
	src := d.src
	maxLen := min(dfMaxMatch, len(src)-s)
	best, bestPos := prevLen, 0
	if best >= maxLen {
		return dfMinMatch - 1, 0
	}
	chain := d.p.chain
	if prevLen >= d.p.good {
		chain >>= 2
	}
	nice := min(d.p.nice, maxLen)
	limit := int32(s - dfMaxDist)
	scan := src[s : s+maxLen]
	le := binary.LittleEndian
	start, end := le.Uint16(scan), le.Uint16(scan[best-1:])
	for {
		m := int(cur)
		// Cheap rejections first: the two bytes that would make this
		// match longer than the best one, then the first two.
		if le.Uint16(src[m+best-1:]) == end && le.Uint16(src[m:]) == start {
			l := matchLength(src[m:], scan)
			if l > best {
				best, bestPos = l, m
				if l >= nice {
					break
				}
				end = le.Uint16(scan[best-1:])
			}
		}
		cur = d.prev[m&dfWMask]
		chain--
		if cur < limit || cur == dfNoPos || chain == 0 {
			break
		}
	}
	if best == prevLen {
		return dfMinMatch - 1, 0
	}
	return best, bestPos
}

// matchLength returns the length of the common prefix of a and b
// (len(a) >= len(b)), eight bytes at a time.
func matchLength(a, b []byte) int {
	n := 0
	for len(b)-n >= 8 {
		if x := binary.LittleEndian.Uint64(a[n:]) ^ binary.LittleEndian.Uint64(b[n:]); x != 0 {
			return n + bits.TrailingZeros64(x)>>3
		}
		n += 8
	}
	for n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func (d *deflater) emitLiteral(b byte) {
	d.toks = append(d.toks, uint32(b))
	d.litFreq[b]++
	d.rawEnd++
	if len(d.toks) == dfBlockSyms {
		d.flushBlock(false)
	}
}

func (d *deflater) emitMatch(length, dist int) {
	d.toks = append(d.toks, dfMatchFlag|uint32(length-dfMinMatch)<<16|uint32(dist-1))
	d.litFreq[257+int(dfLenCode[length-dfMinMatch])]++
	d.distFreq[dfDistCode[dist-1]]++
	d.rawEnd += length
	if len(d.toks) == dfBlockSyms {
		d.flushBlock(false)
	}
}

// flushBlock writes the pending tokens as one deflate block, in the
// cheapest of the three block types.
func (d *deflater) flushBlock(last bool) {
	h := &d.h
	d.litFreq[256] = 1 // end of block
	buildLengths(d.litFreq[:], 15, h.litLen[:286], &h.scratch)
	buildLengths(d.distFreq[:], 15, h.distLen[:30], &h.scratch)
	nlit, ndist := 286, 30
	for nlit > 257 && h.litLen[nlit-1] == 0 {
		nlit--
	}
	for ndist > 1 && h.distLen[ndist-1] == 0 {
		ndist--
	}
	// Code lengths, run-length coded (RFC 1951 3.2.7), and their code.
	seq := append(append(h.seq[:0], h.litLen[:nlit]...), h.distLen[:ndist]...)
	h.rle = rleLengths(h.rle[:0], seq)
	var clFreq [19]int32
	for _, r := range h.rle {
		clFreq[r&0xff]++
	}
	buildLengths(clFreq[:], 7, h.clLen[:], &h.scratch)
	nclen := 19
	for nclen > 4 && h.clLen[dfCLOrder[nclen-1]] == 0 {
		nclen--
	}

	// Sizes in bits of the three encodings.
	extra := 0
	for c := 0; c < 29; c++ {
		extra += int(d.litFreq[257+c]) * int(dfLenExtra[c])
	}
	for c := 0; c < 30; c++ {
		extra += int(d.distFreq[c]) * int(dfDistExtra[c])
	}
	dyn, fixed := 3+5+5+4+3*nclen+extra, 3+extra
	for _, r := range h.rle {
		sym := r & 0xff
		dyn += int(h.clLen[sym]) + dfCLExtra[sym]
	}
	for i := 0; i < 286; i++ {
		dyn += int(d.litFreq[i]) * int(h.litLen[i])
		fixed += int(d.litFreq[i]) * int(dfFixedLit[i])
	}
	for i := 0; i < 30; i++ {
		dyn += int(d.distFreq[i]) * int(h.distLen[i])
		fixed += int(d.distFreq[i]) * 5
	}
	raw := d.src[d.blockStart:d.rawEnd]
	stored := (len(raw)/0xffff + 1) * (3 + 7 + 32)
	stored += 8 * len(raw)

	bw := &d.bw
	fin := uint64(0)
	if last {
		fin = 1
	}
	switch {
	case stored < dyn && stored < fixed:
		for len(raw) > 0 || stored > 0 {
			n := min(len(raw), 0xffff)
			f := uint64(0)
			if n == len(raw) {
				f = fin
			}
			bw.write(f, 3) // BTYPE 00
			bw.align()
			bw.out = binary.LittleEndian.AppendUint16(bw.out, uint16(n))
			bw.out = binary.LittleEndian.AppendUint16(bw.out, ^uint16(n))
			bw.out = append(bw.out, raw[:n]...)
			raw = raw[n:]
			stored = 0
		}
	case fixed <= dyn:
		bw.write(fin|1<<1, 3) // BTYPE 01
		d.writeTokens(dfFixedLitCodes[:], dfFixedLit[:], dfFixedDistCodes[:], dfFixedDist[:])
	default:
		bw.write(fin|2<<1, 3) // BTYPE 10
		bw.write(uint64(nlit-257), 5)
		bw.write(uint64(ndist-1), 5)
		bw.write(uint64(nclen-4), 4)
		for _, sym := range dfCLOrder[:nclen] {
			bw.write(uint64(h.clLen[sym]), 3)
		}
		canonicalCodes(h.clLen[:], h.clCode[:])
		for _, r := range h.rle {
			sym := r & 0xff
			bw.write(uint64(h.clCode[sym]), uint(h.clLen[sym]))
			switch sym {
			case 16:
				bw.write(uint64(r>>8), 2)
			case 17:
				bw.write(uint64(r>>8), 3)
			case 18:
				bw.write(uint64(r>>8), 7)
			}
		}
		canonicalCodes(h.litLen[:286], h.litCode[:286])
		canonicalCodes(h.distLen[:30], h.distCode[:30])
		d.writeTokens(h.litCode[:], h.litLen[:], h.distCode[:], h.distLen[:])
	}
	d.toks = d.toks[:0]
	d.blockStart = d.rawEnd
	clear(d.litFreq[:])
	clear(d.distFreq[:])
}

func (d *deflater) writeTokens(litCode []uint16, litLen []uint8, distCode []uint16, distLen []uint8) {
	bw := &d.bw
	for _, t := range d.toks {
		if t&dfMatchFlag == 0 {
			bw.write(uint64(litCode[t]), uint(litLen[t]))
			continue
		}
		l := int(t>>16) & 0xff
		dist := t & 0xffff
		lc := dfLenCode[l]
		bw.write(uint64(litCode[257+int(lc)])|uint64(l+dfMinMatch-int(dfLenBase[lc]))<<litLen[257+int(lc)],
			uint(litLen[257+int(lc)])+uint(dfLenExtra[lc]))
		dc := dfDistCode[dist]
		bw.write(uint64(distCode[dc])|uint64(dist+1-dfDistBase[dc])<<distLen[dc],
			uint(distLen[dc])+uint(dfDistExtra[dc]))
	}
	bw.write(uint64(litCode[256]), uint(litLen[256]))
}

// rleLengths encodes a code length sequence with the repeat codes 16
// (previous length 3-6 times), 17 (zero 3-10 times) and 18 (zero 11-138
// times). Each entry is symbol | extra-bits value << 8.
func rleLengths(out []uint16, seq []uint8) []uint16 {
	for i := 0; i < len(seq); {
		l := seq[i]
		run := 1
		for i+run < len(seq) && seq[i+run] == l {
			run++
		}
		i += run
		if l == 0 {
			for run >= 11 {
				r := min(run, 138)
				out = append(out, 18|uint16(r-11)<<8)
				run -= r
			}
			if run >= 3 {
				out = append(out, 17|uint16(run-3)<<8)
				run = 0
			}
		} else {
			out = append(out, uint16(l))
			run--
			for run >= 3 {
				r := min(run, 6)
				out = append(out, 16|uint16(r-3)<<8)
				run -= r
			}
		}
		for ; run > 0; run-- {
			out = append(out, uint16(l))
		}
	}
	return out
}

type huffScratch struct {
	litLen   [288]uint8
	litCode  [288]uint16
	distLen  [30]uint8
	distCode [30]uint16
	clLen    [19]uint8
	clCode   [19]uint16
	seq      []uint8
	rle      []uint16
	scratch  lengthScratch
}

type lengthScratch struct {
	leaves []int
	weight []int64
	parent []int
	depth  []int
}

// buildLengths computes Huffman code lengths of at most maxBits for the
// symbols with non-zero frequency (zero for the others). As zlib does,
// at least two symbols get a code, so that every code is complete.
func buildLengths(freq []int32, maxBits int, lengths []uint8, sc *lengthScratch) {
	clear(lengths)
	leaves := sc.leaves[:0]
	for s, f := range freq {
		if f > 0 {
			leaves = append(leaves, s)
		}
	}
	for s := 0; len(leaves) < 2; s++ {
		if freq[s] == 0 {
			leaves = append(leaves, s)
		}
	}
	w := func(s int) int64 {
		if freq[s] == 0 {
			return 1
		}
		return int64(freq[s])
	}
	sort.Slice(leaves, func(i, j int) bool {
		wi, wj := w(leaves[i]), w(leaves[j])
		return wi < wj || wi == wj && leaves[i] < leaves[j]
	})
	n := len(leaves)
	if cap(sc.weight) < 2*n {
		sc.weight, sc.parent, sc.depth = make([]int64, 2*n), make([]int, 2*n), make([]int, 2*n)
	}
	weight, parent, depth := sc.weight[:2*n-1], sc.parent[:2*n-1], sc.depth[:2*n-1]
	for i, s := range leaves {
		weight[i] = w(s)
	}
	// Two-queue Huffman construction over leaves sorted by weight.
	li, ni := 0, n
	pick := func(k int) int {
		if li < n && (ni >= k || weight[li] <= weight[ni]) {
			li++
			return li - 1
		}
		ni++
		return ni - 1
	}
	for k := n; k < 2*n-1; k++ {
		a, b := pick(k), pick(k)
		weight[k] = weight[a] + weight[b]
		parent[a], parent[b] = k, k
	}
	depth[2*n-2] = 0
	for k := 2*n - 3; k >= 0; k-- {
		depth[k] = depth[parent[k]] + 1
	}
	// Count leaves per length, clamping to maxBits, then restore the
	// Kraft equality by moving leaves down (as miniz does): the least
	// frequent symbols get the longest codes.
	var count [16]int
	for i := 0; i < n; i++ {
		count[min(depth[i], maxBits)]++
	}
	total := 0
	for l := 1; l <= maxBits; l++ {
		total += count[l] << (maxBits - l)
	}
	for total > 1<<maxBits {
		count[maxBits]--
		for l := maxBits - 1; l > 0; l-- {
			if count[l] > 0 {
				count[l]--
				count[l+1] += 2
				break
			}
		}
		total--
	}
	i := 0
	for l := maxBits; l >= 1; l-- {
		for c := count[l]; c > 0; c-- {
			lengths[leaves[i]] = uint8(l)
			i++
		}
	}
	sc.leaves = leaves
}

// canonicalCodes assigns RFC 1951 canonical codes to the given lengths,
// bit-reversed for LSB-first output.
func canonicalCodes(lengths []uint8, codes []uint16) {
	var count [16]uint16
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	var next [16]uint16
	code := uint16(0)
	for b := 1; b < 16; b++ {
		code = (code + count[b-1]) << 1
		next[b] = code
	}
	for s, l := range lengths {
		if l == 0 {
			codes[s] = 0
			continue
		}
		codes[s] = bits.Reverse16(next[l]) >> (16 - l)
		next[l]++
	}
}

// bitWriter packs bits LSB first, as deflate requires.
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

// write appends the nb low bits of v (nb <= 32).
func (w *bitWriter) write(v uint64, nb uint) {
	w.acc |= v << w.n
	w.n += nb
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.acc))
		w.acc >>= 32
		w.n -= 32
	}
}

// align flushes the pending bits, padding to a byte boundary.
func (w *bitWriter) align() {
	for w.n > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		if w.n < 8 {
			w.n = 0
		} else {
			w.n -= 8
		}
	}
	w.acc = 0
}
