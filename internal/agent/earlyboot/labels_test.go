package earlyboot

import "testing"

func TestImageLabel(t *testing.T) {
	for in, want := range map[string]string{
		"/run/initramfs/cos-state/cOS/active.img\n":        "COS_ACTIVE",
		"/run/initramfs/cos-state/cOS/passive.img":         "COS_PASSIVE",
		"/run/initramfs/cos-state/cOS/recovery.squashfs\n": "COS_SYSTEM",
		"/run/initramfs/cos-state/cOS/recovery.img":        "COS_SYSTEM",
		"/run/initramfs/cos-state/cOS/transition.img":      "",
		"/tmp/x.img": "",
	} {
		if got := ImageLabel(in); got != want {
			t.Errorf("ImageLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
