package fat

import "encoding/binary"

// FSInfo signatures (fatgen103 "FAT32 FSInfo Sector Structure").
const (
	fsInfoLeadSig  = 0x41615252
	fsInfoStrucSig = 0x61417272
	fsInfoTrailSig = 0xAA550000
)

// fsInfo is the FAT32 FSInfo sector: a hint of the free cluster count and of
// where to look for free clusters. fsck.vfat checks the count, so it must be
// exact.
type fsInfo struct {
	freeClusters uint32
	// lastAllocated is FSI_Nxt_Free: "typically the last cluster number
	// the driver allocated"; drivers (Linux, EDK2) search from the next one.
	lastAllocated uint32
}

func (f fsInfo) marshal() []byte {
	s := make([]byte, sectorSize)
	le := binary.LittleEndian
	le.PutUint32(s[0:], fsInfoLeadSig)
	le.PutUint32(s[484:], fsInfoStrucSig)
	le.PutUint32(s[488:], f.freeClusters)
	le.PutUint32(s[492:], f.lastAllocated)
	le.PutUint32(s[508:], fsInfoTrailSig)
	return s
}
