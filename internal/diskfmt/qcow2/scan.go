package qcow2

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// scanChunk is how much of a data region is read at once while looking for
// zero clusters: large enough for few syscalls, small enough to stay in cache.
const scanChunk = 4 << 20

// extent is a byte range [start, end) of the source that may hold data.
// Everything outside the extents is a hole and reads as zeros.
type extent struct{ start, end int64 }

// clusterMap is the set of guest clusters that are stored in the image, a
// bitmap so that even a multi-terabyte disk costs only a few megabytes.
type clusterMap struct {
	words []uint64
	n     int64 // number of guest clusters
}

func newClusterMap(n int64) *clusterMap {
	return &clusterMap{words: make([]uint64, ceilDiv(n, 64)), n: n}
}

func (m *clusterMap) set(i int64)      { m.words[i/64] |= 1 << (i % 64) }
func (m *clusterMap) has(i int64) bool { return i < m.n && m.words[i/64]&(1<<(i%64)) != 0 }

// count returns the number of stored clusters.
func (m *clusterMap) count() int64 {
	var c int
	for _, w := range m.words {
		c += bits.OnesCount64(w)
	}
	return int64(c)
}

// any reports whether a cluster in [lo, hi) is stored.
func (m *clusterMap) any(lo, hi int64) bool {
	hi = min(hi, m.n)
	for i := lo; i < hi; {
		if i%64 == 0 && i+64 <= hi {
			if m.words[i/64] != 0 {
				return true
			}
			i += 64
			continue
		}
		if m.has(i) {
			return true
		}
		i++
	}
	return false
}

// scan finds the guest clusters of src that hold at least one non-zero byte.
// Holes reported by the file system are skipped without reading them; data
// regions are read and checked cluster by cluster, because file systems and
// image builders often store runs of zeros as data.
func scan(src io.ReaderAt, size, clusterSize int64) (*clusterMap, error) {
	m := newClusterMap(ceilDiv(size, clusterSize))
	chunkClusters := max(scanChunk/clusterSize, 1)
	buf := make([]byte, chunkClusters*clusterSize)
	zero := make([]byte, clusterSize)

	done := int64(0) // clusters below this index were already checked
	for _, e := range dataExtents(src, size) {
		first := max(e.start/clusterSize, done)
		last := ceilDiv(e.end, clusterSize)
		for c := first; c < last; {
			n := min(last-c, chunkClusters)
			off := c * clusterSize
			p := buf[:min(n*clusterSize, size-off)]
			if err := readFull(src, p, off); err != nil {
				return nil, err
			}
			for k := int64(0); k < n; k++ {
				part := p[k*clusterSize : min((k+1)*clusterSize, int64(len(p)))]
				if !bytes.Equal(part, zero[:len(part)]) {
					m.set(c + k)
				}
			}
			c += n
		}
		done = max(done, last)
	}
	return m, nil
}

// readFull reads exactly len(p) bytes at off: a source shorter than the
// declared size is an error, not silently zero-filled.
func readFull(src io.ReaderAt, p []byte, off int64) error {
	n, err := src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("reading source at offset %d: %w", off+int64(n), err)
}
