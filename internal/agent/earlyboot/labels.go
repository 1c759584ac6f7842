package earlyboot

import "strings"

// imageLabels name the loop device of a system image after the image
// file, as 90-kairos-images.rules does under udev: an upgrade interrupted
// between its renames still boots, and a squashfs recovery image (no
// label) boots as COS_SYSTEM.
var imageLabels = map[string]string{
	"/cOS/active.img":        "COS_ACTIVE",
	"/cOS/passive.img":       "COS_PASSIVE",
	"/cOS/recovery.img":      "COS_SYSTEM",
	"/cOS/recovery.squashfs": "COS_SYSTEM",
}

// ImageLabel is the label of a loop device backed by file, "" when it is
// not a system image.
func ImageLabel(backingFile string) string {
	for suffix, label := range imageLabels {
		if strings.HasSuffix(strings.TrimSpace(backingFile), suffix) {
			return label
		}
	}
	return ""
}
