package qcow2

import "fmt"

const (
	// DefaultClusterSize is qemu-img's default cluster size.
	DefaultClusterSize = 64 << 10

	minClusterBits = 9  // 512 bytes, qcow2.txt minimum
	maxClusterBits = 21 // 2 MiB, qcow2.txt maximum

	// maxL1Bytes mirrors qemu's QCOW_MAX_L1_SIZE: larger L1 tables are refused
	// when the image is opened.
	maxL1Bytes = 32 << 20

	entryBytes = 8 // L1, L2 and refcount table entries are 64-bit
)

// layout places every structure of the output file. It is pure arithmetic
// over the virtual size, the cluster size and the set of stored clusters, so
// the same input always gives the same file.
//
// Host clusters, in order:
//
//	0                      header
//	1 ..                   L1 table        (l1Clusters)
//	then                   refcount table  (rtClusters)
//	then                   refcount blocks (rbCount)
//	then                   L2 tables       (l2Count), in L1 order
//	then                   data clusters   (dataCount), in guest order
type layout struct {
	clusterSize   int64
	clusterBits   uint32
	size          int64 // virtual size in bytes
	guestClusters int64 // clusters covering the virtual size
	l2Entries     int64 // entries per L2 table (and per L1 table cluster)
	l1Size        int64 // L1 entries: one per L2 table the disk could need

	l1Clusters int64
	rtClusters int64
	rbCount    int64
	l2Count    int64
	dataCount  int64
}

// newLayout computes the layout for a disk of size bytes whose stored
// clusters are those set in m.
func newLayout(size int64, clusterSize int64, m *clusterMap) (layout, error) {
	bits, err := clusterBits(clusterSize)
	if err != nil {
		return layout{}, err
	}
	l := layout{
		clusterSize: clusterSize,
		clusterBits: bits,
		size:        size,
		l2Entries:   clusterSize / entryBytes,
	}
	l.guestClusters = ceilDiv(size, clusterSize)
	l.l1Size = ceilDiv(l.guestClusters, l.l2Entries)
	if l.l1Size*entryBytes > maxL1Bytes {
		return layout{}, fmt.Errorf("virtual size %d bytes needs an L1 table of %d bytes, more than qemu's limit of %d; use a larger cluster size",
			size, l.l1Size*entryBytes, maxL1Bytes)
	}
	l.l1Clusters = ceilDiv(l.l1Size*entryBytes, clusterSize)
	l.dataCount = m.count()
	for i := int64(0); i < l.l1Size; i++ {
		if m.any(i*l.l2Entries, (i+1)*l.l2Entries) {
			l.l2Count++
		}
	}

	// The refcount structures must count themselves, so their size is a
	// fixed point. Growing only (never shrinking) guarantees termination; at
	// worst one refcount block too many is allocated, which is still
	// referenced by the refcount table and so is not a leak.
	refsPerBlock := clusterSize / refcountBytes
	fixed := 1 + l.l1Clusters + l.l2Count + l.dataCount
	l.rbCount, l.rtClusters = 1, 1
	for {
		total := fixed + l.rtClusters + l.rbCount
		rb := ceilDiv(total, refsPerBlock)
		rt := ceilDiv(rb*entryBytes, clusterSize)
		if rb <= l.rbCount && rt <= l.rtClusters {
			break
		}
		l.rbCount = max(l.rbCount, rb)
		l.rtClusters = max(l.rtClusters, rt)
	}
	return l, nil
}

func (l layout) l1Offset() int64   { return l.clusterSize }
func (l layout) rtOffset() int64   { return l.l1Offset() + l.l1Clusters*l.clusterSize }
func (l layout) rbOffset() int64   { return l.rtOffset() + l.rtClusters*l.clusterSize }
func (l layout) l2Offset() int64   { return l.rbOffset() + l.rbCount*l.clusterSize }
func (l layout) dataOffset() int64 { return l.l2Offset() + l.l2Count*l.clusterSize }

// hostClusters is the number of clusters in the output file, each with a
// refcount of 1.
func (l layout) hostClusters() int64 {
	return 1 + l.l1Clusters + l.rtClusters + l.rbCount + l.l2Count + l.dataCount
}

// fileSize is the size of the output file in bytes.
func (l layout) fileSize() int64 { return l.hostClusters() * l.clusterSize }

func (l layout) header() header {
	return header{
		clusterBits:           l.clusterBits,
		size:                  uint64(l.size),
		l1Size:                uint32(l.l1Size),
		l1TableOffset:         uint64(l.l1Offset()),
		refcountTableOffset:   uint64(l.rtOffset()),
		refcountTableClusters: uint32(l.rtClusters),
	}
}

// clusterBits validates a cluster size and returns its base-2 logarithm.
func clusterBits(clusterSize int64) (uint32, error) {
	for b := uint32(minClusterBits); b <= maxClusterBits; b++ {
		if int64(1)<<b == clusterSize {
			return b, nil
		}
	}
	return 0, fmt.Errorf("cluster size %d is not a power of two between %d and %d bytes",
		clusterSize, 1<<minClusterBits, 1<<maxClusterBits)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
