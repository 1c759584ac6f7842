package earlyboot

import "testing"

func TestDecide(t *testing.T) {
	installed := "BOOT_IMAGE=(loop0)/boot/vmlinuz root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img console=ttyS0 rd.cos.oemlabel=COS_OEM panic=5 rd.emergency=reboot rd.shell=0 systemd.crash_reboot=yes rd.luks=0"
	live := "BOOT_IMAGE=/boot/kernel root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs rd.live.overlay.overlayfs console=ttyS0 console=tty1 rd.cos.disable rd.luks=0 install-mode"
	ourLive := LiveMedium{Label: "COS_LIVE", Dir: "/", Image: "rootfs.squashfs"}
	for _, c := range []struct {
		cmdline string
		boot    Boot
		live    LiveMedium
	}{
		{installed, Installed, LiveMedium{}},
		{"root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.squashfs rd.shell=0", Installed, LiveMedium{}},
		{live, Live, ourLive},
		{"root=live:LABEL=MYSTICK rd.live.overlay.overlayfs=1", Live, LiveMedium{Label: "MYSTICK", Dir: "/LiveOS", Image: "squashfs.img"}},
		{"root=live:CDLABEL=COS_LIVE rd.live.dir=boot/x rd.live.squashimg=r.sq rd.live.overlay.overlayfs", Live, LiveMedium{Label: "COS_LIVE", Dir: "/boot/x", Image: "r.sq"}},
		{installed + " rd.kairos.dracut", Dracut, LiveMedium{}},
		{live + " rd.kairos.dracut", Dracut, LiveMedium{}},
		{installed + " rd.break=pre-pivot", Dracut, LiveMedium{}},
		{installed + " rd.break", Dracut, LiveMedium{}},
		{installed + " rd.shell=1", Dracut, LiveMedium{}},
		{installed + " rd.shell", Dracut, LiveMedium{}},
		{installed + " rd.systemd.unit=emergency.target", Dracut, LiveMedium{}},
		// Live options this path does not carry out, network boots.
		{"root=live:CDLABEL=COS_LIVE rd.live.squashimg=rootfs.squashfs", Dracut, LiveMedium{}},
		{live + " rd.live.ram", Dracut, LiveMedium{}},
		{live + " rd.live.overlay=LABEL=persist", Dracut, LiveMedium{}},
		{live + " rd.live.check", Dracut, LiveMedium{}},
		{"root=live:http://10.0.2.2/rootfs.squashfs initrd=x rd.neednet=1 ip=dhcp rd.cos.disable rd.live.overlay.overlayfs", Dracut, LiveMedium{}},
		{"root=live:UUID=1234 rd.live.overlay.overlayfs", Dracut, LiveMedium{}},
		{"root=live:CDLABEL=a/b rd.live.overlay.overlayfs", Dracut, LiveMedium{}},
		{"root=live:CDLABEL=COS_LIVE rd.live.dir=../.. rd.live.overlay.overlayfs", Dracut, LiveMedium{}},
		{"root=live:CDLABEL=COS_LIVE rd.live.squashimg=../x rd.live.overlay.overlayfs", Dracut, LiveMedium{}},
		{"root=/dev/sda2 ro quiet", Dracut, LiveMedium{}},
		{"", Dracut, LiveMedium{}},
	} {
		boot, lm, why := Decide(c.cmdline)
		if boot != c.boot || lm != c.live || (boot == Dracut && why == "") {
			t.Errorf("Decide(%q) = %v, %+v, %q; want %v, %+v and a reason for dracut", c.cmdline, boot, lm, why, c.boot, c.live)
		}
	}
}
