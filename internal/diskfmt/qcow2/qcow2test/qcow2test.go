// Package qcow2test judges qcow2 images with the reference tool, qemu-img,
// as go-containerregistry's validate judges images: Verify checks an image
// against the raw disk it holds; Read and DataClusters report what
// qemu-img reads of it, for checks of their own. It does not use the
// converter's code: it judges the format for the converter's tests and
// for those of the packages writing disks.
package qcow2test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Verify checks the qcow2 image img against raw, the disk image it holds:
// qemu-img check finds no errors and no leaks, qemu-img info reports a
// qcow2 image of raw's size that is not marked corrupt, and qemu-img
// compare reads the same content from both.
func Verify(img, raw string) error {
	out, err := qemuImg("check", "-f", "qcow2", img)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "No errors were found on the image.") {
		return fmt.Errorf("qemu-img check %s:\n%s", img, out)
	}
	info, err := Read(img)
	if err != nil {
		return err
	}
	fi, err := os.Stat(raw)
	if err != nil {
		return err
	}
	if info.Format != "qcow2" || info.VirtualSize != fi.Size() || info.Specific.Data.Corrupt {
		return fmt.Errorf("qemu-img info %s: a %s image of %d bytes (corrupt: %v), want a qcow2 of %s's %d bytes",
			img, info.Format, info.VirtualSize, info.Specific.Data.Corrupt, raw, fi.Size())
	}
	// compare stops at the first difference and names its offset.
	_, err = qemuImg("compare", "-f", "raw", "-F", "qcow2", raw, img)
	return err
}

// Info is what qemu-img info reports of an image.
type Info struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ClusterSize int64  `json:"cluster-size"`
	Specific    struct {
		Data struct {
			Compat       string `json:"compat"`
			RefcountBits int    `json:"refcount-bits"`
			Corrupt      bool   `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// Read returns what qemu-img info reports of the qcow2 image img.
func Read(img string) (Info, error) {
	var info Info
	js, err := qemuImg("info", "--output=json", "-f", "qcow2", img)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal([]byte(js), &info); err != nil {
		return info, fmt.Errorf("qemu-img info %s: %v\n%s", img, err, js)
	}
	return info, nil
}

// DataClusters returns the clusters of cs bytes (by index) that qemu-img
// map reports as holding data in the qcow2 image img.
func DataClusters(img string, cs int64) (map[int64]bool, error) {
	var ranges []struct {
		Start  int64 `json:"start"`
		Length int64 `json:"length"`
		Data   bool  `json:"data"`
	}
	js, err := qemuImg("map", "--output=json", "-f", "qcow2", img)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(js), &ranges); err != nil {
		return nil, fmt.Errorf("qemu-img map %s: %v\n%s", img, err, js)
	}
	got := map[int64]bool{}
	for _, r := range ranges {
		for c := r.Start / cs; r.Data && c < (r.Start+r.Length+cs-1)/cs; c++ {
			got[c] = true
		}
	}
	return got, nil
}

func qemuImg(args ...string) (string, error) {
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("qemu-img %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
