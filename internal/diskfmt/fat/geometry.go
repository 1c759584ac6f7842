package fat

import (
	"errors"
	"fmt"
)

// FAT variants Write can produce. The variant is not a choice made by a flag
// in the image: readers derive it from the number of clusters alone
// (fatgen103 "FAT Type Determination"), so the geometry must land in range.
const (
	FAT16 = 16
	FAT32 = 32
)

const (
	sectorSize = 512
	numFATs    = 2 // the second FAT is a copy; every FAT driver expects two

	fat16Reserved    = 1   // boot sector only
	fat32Reserved    = 32  // boot, FSInfo, backups at 6 and 7, room to spare
	fat16RootEntries = 512 // fixed root directory, 16 KiB

	minFAT16Clusters = 4085 // fewer is FAT12
	maxFAT16Clusters = 65524
	minFAT32Clusters = 65525
	maxFAT32Clusters = 0x0FFFFFF4 // 0x0FFFFFF5 and up are reserved values

	fat32RootCluster = 2
	maxClusterSize   = 32 << 10 // the largest every FAT driver accepts
)

// geometry is where everything lives in the file system: the pure result of
// the size and the options.
type geometry struct {
	fatType           int
	totalSectors      int64
	sectorsPerCluster int64
	reservedSectors   int64
	rootEntries       int64 // FAT16 fixed root directory entries; 0 on FAT32
	fatSectors        int64 // size of one FAT
	clusters          int64 // data clusters, numbered 2 .. clusters+1
}

func (g geometry) clusterSize() int64 { return g.sectorsPerCluster * sectorSize }
func (g geometry) fatOffset(i int) int64 {
	return (g.reservedSectors + int64(i)*g.fatSectors) * sectorSize
}
func (g geometry) rootDirSectors() int64 { return g.rootEntries * dirEntrySize / sectorSize }
func (g geometry) rootDirOffset() int64  { return g.fatOffset(numFATs) }
func (g geometry) dataOffset() int64     { return g.rootDirOffset() + g.rootDirSectors()*sectorSize }
func (g geometry) clusterOffset(c uint32) int64 {
	return g.dataOffset() + int64(c-2)*g.clusterSize()
}

// entryBytes is the size of one FAT entry.
func (g geometry) entryBytes() int64 {
	if g.fatType == FAT32 {
		return 4
	}
	return 2
}

// newGeometry chooses the FAT variant and cluster size for a file system of
// size bytes. Automatic choice: FAT32 whenever the size allows its minimum of
// 65525 clusters (about 33 MiB with 512-byte clusters; the UEFI spec asks for
// FAT32 on system partitions, so the 64 MiB COS_GRUB ESP gets it), FAT16
// below (small images like the ISO's El Torito EFI image). FAT12 is not
// written: OVMF and every other UEFI firmware read FAT16 and FAT32.
func newGeometry(size int64, opt Options) (geometry, error) {
	if size <= 0 || size%sectorSize != 0 {
		return geometry{}, fmt.Errorf("size %d is not a positive multiple of %d bytes", size, sectorSize)
	}
	total := size / sectorSize
	if total > 0xFFFFFFFF {
		return geometry{}, fmt.Errorf("size %d is over the 2 TiB FAT limit", size)
	}
	switch opt.FATType {
	case 0:
		g, err := fit(total, FAT32, opt.ClusterSize)
		if err == nil {
			return g, nil
		}
		g, err16 := fit(total, FAT16, opt.ClusterSize)
		if err16 == nil {
			return g, nil
		}
		return geometry{}, fmt.Errorf("no FAT variant fits: %w", errors.Join(err16, err))
	case FAT16, FAT32:
		return fit(total, opt.FATType, opt.ClusterSize)
	default:
		return geometry{}, fmt.Errorf("FAT type %d is not supported (use 0 for automatic, %d or %d)", opt.FATType, FAT16, FAT32)
	}
}

// fit finds a cluster size giving a cluster count valid for fatType: the
// given one, or Microsoft's default for the size (fatgen103 DskTableFAT16
// and DskTableFAT32) adjusted until the count is in range.
func fit(total int64, fatType int, clusterSize int64) (geometry, error) {
	if clusterSize != 0 {
		if clusterSize < sectorSize || clusterSize > maxClusterSize || clusterSize&(clusterSize-1) != 0 {
			return geometry{}, fmt.Errorf("cluster size %d is not a power of two from %d to %d bytes", clusterSize, sectorSize, maxClusterSize)
		}
		g := compute(total, fatType, clusterSize/sectorSize)
		if err := g.checkCount(); err != nil {
			return geometry{}, fmt.Errorf("%w with %d-byte clusters", err, clusterSize)
		}
		return g, nil
	}
	spc := defaultSectorsPerCluster(total, fatType)
	for {
		g := compute(total, fatType, spc)
		err := g.checkCount()
		switch {
		case err == nil:
			return g, nil
		case g.clusters < g.minClusters() && spc > 1:
			spc /= 2 // more, smaller clusters
		case g.clusters > g.maxClusters() && spc*sectorSize < maxClusterSize:
			spc *= 2 // fewer, larger clusters
		default:
			return geometry{}, fmt.Errorf("%w (minimum FAT%d size is %d KiB)", err, fatType, minSize(fatType)/1024)
		}
	}
}

// compute lays out a file system: FATs just large enough for the clusters
// that remain after them. Growing the FAT only shrinks the cluster count,
// so the loop converges.
func compute(total int64, fatType int, spc int64) geometry {
	g := geometry{fatType: fatType, totalSectors: total, sectorsPerCluster: spc, reservedSectors: fat32Reserved}
	if fatType == FAT16 {
		g.reservedSectors = fat16Reserved
		g.rootEntries = fat16RootEntries
	}
	g.fatSectors = 1
	for {
		data := total - g.reservedSectors - numFATs*g.fatSectors - g.rootDirSectors()
		g.clusters = max(data, 0) / spc
		need := ((g.clusters+2)*g.entryBytes() + sectorSize - 1) / sectorSize
		if need <= g.fatSectors {
			return g
		}
		g.fatSectors = need
	}
}

func (g geometry) minClusters() int64 {
	if g.fatType == FAT32 {
		return minFAT32Clusters
	}
	return minFAT16Clusters
}

func (g geometry) maxClusters() int64 {
	if g.fatType == FAT32 {
		return maxFAT32Clusters
	}
	return maxFAT16Clusters
}

func (g geometry) checkCount() error {
	if g.clusters < g.minClusters() || g.clusters > g.maxClusters() {
		return fmt.Errorf("FAT%d needs %d to %d clusters, %d bytes give %d",
			g.fatType, g.minClusters(), g.maxClusters(), g.totalSectors*sectorSize, g.clusters)
	}
	return nil
}

// minSize is the smallest file system of the variant, with 512-byte clusters.
func minSize(fatType int) int64 {
	g := geometry{fatType: fatType, sectorsPerCluster: 1, reservedSectors: fat32Reserved}
	if fatType == FAT16 {
		g.reservedSectors, g.rootEntries = fat16Reserved, fat16RootEntries
	}
	n := g.minClusters()
	fat := ((n+2)*g.entryBytes() + sectorSize - 1) / sectorSize
	return (g.reservedSectors + numFATs*fat + g.rootDirSectors() + n) * sectorSize
}

// defaultSectorsPerCluster follows fatgen103's tables, except that FAT16
// below 8400 sectors (where Microsoft would use FAT12) gets 512-byte clusters.
func defaultSectorsPerCluster(total int64, fatType int) int64 {
	if fatType == FAT32 {
		switch {
		case total <= 532480: // 260 MiB
			return 1
		case total <= 16777216: // 8 GiB
			return 8
		case total <= 33554432: // 16 GiB
			return 16
		case total <= 67108864: // 32 GiB
			return 32
		default:
			return 64
		}
	}
	switch {
	case total <= 8400:
		return 1
	case total <= 32680: // 16 MiB
		return 2
	case total <= 262144: // 128 MiB
		return 4
	case total <= 524288: // 256 MiB
		return 8
	case total <= 1048576: // 512 MiB
		return 16
	case total <= 2097152: // 1 GiB
		return 32
	default:
		return 64
	}
}
