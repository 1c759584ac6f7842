package blockdev

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// UdevPending lists the block devices the kernel has found that udev has
// not processed yet: those without a database entry in udevData
// (/run/udev/data/b<major>:<minor>), where udev records a device once its
// rules ran and its /dev/disk/by-* links exist. Devices with no media
// (size 0: an empty CD drive, an unused loop or RAM disk) are not waited
// for: udev has nothing to name on them.
func (h Devices) UdevPending(udevData string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(h.Sys, "class/block"))
	if err != nil {
		return nil, err
	}
	var pending []string
	for _, e := range entries {
		n := e.Name()
		if size, err := h.size(n); err != nil || size == 0 {
			continue
		}
		dev, err := os.ReadFile(filepath.Join(h.Sys, "class/block", n, "dev"))
		if err != nil {
			continue // gone meanwhile
		}
		if _, err := os.Stat(filepath.Join(udevData, "b"+strings.TrimSpace(string(dev)))); err != nil {
			pending = append(pending, n)
		}
	}
	sort.Strings(pending)
	return pending, nil
}

// WaitUdev waits, at most timeout, until udev has processed every block
// device present (UdevPending is empty): what was deprecated
// systemd-udev-settle's job, for block devices only and bounded, so a
// boot never waits on unrelated devices. It returns the devices still
// pending at the deadline with an error naming them.
func (h Devices) WaitUdev(udevData string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pending, err := h.UdevPending(udevData)
		if err != nil {
			return fmt.Errorf("listing block devices: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("udev has not named %s after %s: volumes on them (CIDATA) are not seen", strings.Join(pending, ", "), timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
