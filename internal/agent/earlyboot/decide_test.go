package earlyboot

import "testing"

func TestDecide(t *testing.T) {
	installed := "BOOT_IMAGE=(loop0)/boot/vmlinuz root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img console=ttyS0 rd.cos.oemlabel=COS_OEM panic=5 rd.emergency=reboot rd.shell=0 systemd.crash_reboot=yes rd.luks=0"
	for _, c := range []struct {
		cmdline string
		fast    bool
	}{
		{installed, true},
		{"root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.squashfs rd.shell=0", true},
		{installed + " rd.kairos.dracut", false},
		{installed + " rd.break=pre-pivot", false},
		{installed + " rd.break", false},
		{installed + " rd.shell=1", false},
		{installed + " rd.shell", false},
		{installed + " rd.systemd.unit=emergency.target", false},
		{"root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs rd.cos.disable install-mode", false},
		{"root=live:http://10.0.2.2/rootfs.squashfs rd.cos.disable", false},
		{"root=/dev/sda2 ro quiet", false},
		{"", false},
	} {
		fast, why := Decide(c.cmdline)
		if fast != c.fast || (!fast && why == "") {
			t.Errorf("Decide(%q) = %v, %q; want fast=%v and a reason when not", c.cmdline, fast, why, c.fast)
		}
	}
}
