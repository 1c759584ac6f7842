package state

import "testing"

func TestDetectBootMode(t *testing.T) {
	for cmdline, want := range map[string]BootMode{
		"BOOT_IMAGE=/boot/kernel root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.cos.disable console=ttyS0": LiveCDBoot,
		"root=live:http://10.0.2.2/x.squashfs rd.neednet=1 netboot":                                     LiveCDBoot,
		"root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img panic=5":                                ActiveBoot,
		"root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img":                                      PassiveBoot,
		"root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img":                                      RecoveryBoot,
		"root=/dev/sda1 quiet": UnknownBoot,
	} {
		if got := DetectBootMode(cmdline); got != want {
			t.Errorf("DetectBootMode(%q) = %s, want %s", cmdline, got, want)
		}
	}
}
