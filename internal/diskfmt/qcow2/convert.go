package qcow2

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
)

// Options tune the image. The zero value matches `qemu-img convert -O qcow2`
// defaults.
type Options struct {
	// ClusterSize in bytes: a power of two from 512 B to 2 MiB. 0 means
	// DefaultClusterSize (64 KiB). Smaller clusters store sparse data more
	// tightly at the cost of larger tables.
	ClusterSize int64
}

// Convert writes a qcow2 version 3 image of the raw disk src, whose virtual
// size is size bytes (a multiple of 512, like any disk), to dst.
//
// Clusters of src that are all zeros are not stored. When src is an
// *os.File, holes are found with SEEK_DATA/SEEK_HOLE and never read. src is
// read twice (zero scan, then copy) and must not change during the call. dst
// is written sequentially from its current position; the same src always
// gives the same bytes.
func Convert(dst io.Writer, src io.ReaderAt, size int64, opt Options) error {
	cs := opt.ClusterSize
	if cs == 0 {
		cs = DefaultClusterSize
	}
	if _, err := clusterBits(cs); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	if size <= 0 || size%512 != 0 {
		return fmt.Errorf("qcow2: virtual size %d is not a positive multiple of 512 bytes", size)
	}
	if err := checkSourceSize(src, size); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}

	m, err := scan(src, size, cs)
	if err != nil {
		return fmt.Errorf("qcow2: scanning for zero clusters: %w", err)
	}
	l, err := newLayout(size, cs, m)
	if err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}

	cw := &countingWriter{w: dst}
	w := bufio.NewWriterSize(cw, 1<<20)
	if err := writeMetadata(w, l, m); err != nil {
		return fmt.Errorf("qcow2: writing metadata: %w", err)
	}
	if err := writeData(w, src, l, m); err != nil {
		return fmt.Errorf("qcow2: writing data clusters: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("qcow2: %w", err)
	}
	// The layout promised every offset in the tables; a mismatch would be a
	// corrupt image, so fail loudly instead of returning it.
	if cw.n != l.fileSize() {
		return fmt.Errorf("qcow2: internal error: wrote %d bytes, layout says %d", cw.n, l.fileSize())
	}
	return nil
}

// writeMetadata writes everything before the first data cluster: header,
// L1 table, refcount table, refcount blocks and L2 tables.
func writeMetadata(w io.Writer, l layout, m *clusterMap) error {
	cluster := make([]byte, l.clusterSize)
	copy(cluster, l.header().marshal())
	if _, err := w.Write(cluster); err != nil {
		return err
	}
	if _, err := w.Write(l1Table(l, m)); err != nil {
		return err
	}
	if _, err := w.Write(refcountTable(l)); err != nil {
		return err
	}
	for j := int64(0); j < l.rbCount; j++ {
		refcountBlock(l, j, cluster)
		if _, err := w.Write(cluster); err != nil {
			return err
		}
	}
	l2 := newL2Writer(l, m)
	for l2.next(cluster) {
		if _, err := w.Write(cluster); err != nil {
			return err
		}
	}
	return nil
}

// writeData copies the stored clusters in guest order, reading runs of
// consecutive clusters at once. The last cluster of a disk whose size is not a
// multiple of the cluster size is padded with zeros.
func writeData(w io.Writer, src io.ReaderAt, l layout, m *clusterMap) error {
	cs := l.clusterSize
	maxRun := max(scanChunk/cs, 1)
	buf := make([]byte, maxRun*cs)
	for c := int64(0); c < m.n; {
		if c%64 == 0 && m.words[c/64] == 0 {
			c += 64 // skip 64 unstored clusters at once
			continue
		}
		if !m.has(c) {
			c++
			continue
		}
		end := c + 1
		for end < m.n && end-c < maxRun && m.has(end) {
			end++
		}
		off := c * cs
		p := buf[:(end-c)*cs]
		avail := min(int64(len(p)), l.size-off)
		if err := readFull(src, p[:avail], off); err != nil {
			return err
		}
		clear(p[avail:])
		if _, err := w.Write(p); err != nil {
			return err
		}
		c = end
	}
	return nil
}

// checkSourceSize refuses a regular file shorter than the virtual size
// before any work is done (holes past its end would otherwise read as zeros).
func checkSourceSize(src io.ReaderAt, size int64) error {
	st, ok := src.(interface{ Stat() (fs.FileInfo, error) })
	if !ok {
		return nil
	}
	fi, err := st.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	if fi.Size() < size {
		return fmt.Errorf("source %s is %d bytes, less than the virtual size %d", fi.Name(), fi.Size(), size)
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
