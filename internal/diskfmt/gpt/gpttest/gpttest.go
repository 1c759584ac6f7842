// Package gpttest judges GUID partition tables with the reference tool,
// sgdisk (gdisk), as go-containerregistry's validate judges images: Verify
// checks a disk and its partitions; Read and Parse report what sgdisk
// reads, for checks of their own. It does not use the encoder's code: it
// judges the format for the encoder's tests and for those of the packages
// writing disks.
package gpttest

import (
	"fmt"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// Table is a partition table as sgdisk reports it.
type Table struct {
	GUID       string // the disk's, upper case
	Partitions []Partition
}

// Partition is one partition as sgdisk reports it.
type Partition struct {
	Number      int
	First, Last int64  // sectors, inclusive
	Code        string // sgdisk's type code, "EF00"
	Name        string
	Type        string // type GUID, upper case (sgdisk -i)
	GUID        string // unique GUID, upper case (sgdisk -i)
	Attributes  string // 16 hex digits (sgdisk -i)
}

// Verify checks disk (an image or a block device) with sgdisk: -v finds no
// problems, the listing (-p) has no warning, and its table is want: every
// field want sets (non-zero) equal, its GUID included, and, when want has
// partitions, as many partitions.
func Verify(disk string, want Table) error {
	out, err := sgdisk("-v", disk)
	if err != nil {
		return err
	}
	if !strings.Contains(out, "No problems found.") {
		return fmt.Errorf("sgdisk -v %s:\n%s", disk, out)
	}
	got, err := Read(disk)
	if err != nil {
		return err
	}
	var errs []string
	if want.GUID != "" && got.GUID != want.GUID {
		errs = append(errs, fmt.Sprintf("disk GUID %s, want %s", got.GUID, want.GUID))
	}
	if len(want.Partitions) > 0 && len(got.Partitions) != len(want.Partitions) {
		errs = append(errs, fmt.Sprintf("%d partitions, want %d", len(got.Partitions), len(want.Partitions)))
	}
	for i := range min(len(got.Partitions), len(want.Partitions)) {
		g, w := reflect.ValueOf(got.Partitions[i]), reflect.ValueOf(want.Partitions[i])
		for f := range w.NumField() {
			if !w.Field(f).IsZero() && !w.Field(f).Equal(g.Field(f)) {
				errs = append(errs, fmt.Sprintf("partition %d: %s %v, want %v", i+1, w.Type().Field(f).Name, g.Field(f), w.Field(f)))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("sgdisk reads %s as %+v:\n%s", disk, got, strings.Join(errs, "\n"))
	}
	return nil
}

// Read returns the partition table of disk as sgdisk reads it: its
// listing (-p, which must have no warning), and every partition's
// details (-i).
func Read(disk string) (Table, error) {
	out, err := sgdisk("-p", disk)
	if err != nil {
		return Table{}, err
	}
	for _, bad := range []string{"Warning", "Caution", "invalid", "corrupt"} {
		if strings.Contains(out, bad) {
			return Table{}, fmt.Errorf("sgdisk -p %s complains (%q):\n%s", disk, bad, out)
		}
	}
	t, err := Parse(out)
	if err != nil {
		return t, fmt.Errorf("sgdisk -p %s: %w", disk, err)
	}
	for i := range t.Partitions {
		p := &t.Partitions[i]
		info, err := sgdisk("-i", strconv.Itoa(p.Number), disk)
		if err != nil {
			return t, err
		}
		var first, last string
		for re, dst := range map[*regexp.Regexp]*string{
			infoType: &p.Type, infoGUID: &p.GUID, infoFirst: &first, infoLast: &last, infoAttrs: &p.Attributes, infoName: &p.Name,
		} {
			m := re.FindStringSubmatch(info)
			if m == nil {
				return t, fmt.Errorf("sgdisk -i %d %s: no %v in:\n%s", p.Number, disk, re, info)
			}
			*dst = m[1]
		}
		if first != strconv.FormatInt(p.First, 10) || last != strconv.FormatInt(p.Last, 10) {
			return t, fmt.Errorf("sgdisk -i %d %s: sectors %s-%s, -p lists %d-%d", p.Number, disk, first, last, p.First, p.Last)
		}
	}
	return t, nil
}

var (
	diskGUID  = regexp.MustCompile(`(?m)^Disk identifier \(GUID\): (\S+)$`)
	listRow   = regexp.MustCompile(`(?m)^\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+ \S+\s+([0-9A-F]{4})  (.*)$`)
	infoType  = regexp.MustCompile(`(?m)^Partition GUID code: (\S+)`)
	infoGUID  = regexp.MustCompile(`(?m)^Partition unique GUID: (\S+)$`)
	infoFirst = regexp.MustCompile(`(?m)^First sector: (\d+) `)
	infoLast  = regexp.MustCompile(`(?m)^Last sector: (\d+) `)
	infoAttrs = regexp.MustCompile(`(?m)^Attribute flags: ([0-9a-fA-F]{16})$`)
	infoName  = regexp.MustCompile(`(?m)^Partition name: '(.*)'$`)
)

// Parse reads the output of sgdisk -p: the disk GUID, and every
// partition's number, sectors, type code and name. It parses what sgdisk
// prints for a damaged table too.
func Parse(out string) (Table, error) {
	var t Table
	if m := diskGUID.FindStringSubmatch(out); m != nil {
		t.GUID = m[1]
	}
	for _, m := range listRow.FindAllStringSubmatch(out, -1) {
		p := Partition{Code: m[4], Name: strings.TrimRight(m[5], " ")}
		p.Number, _ = strconv.Atoi(m[1])
		p.First, _ = strconv.ParseInt(m[2], 10, 64)
		p.Last, _ = strconv.ParseInt(m[3], 10, 64)
		t.Partitions = append(t.Partitions, p)
	}
	if len(t.Partitions) == 0 {
		return t, fmt.Errorf("no partitions in:\n%s", out)
	}
	return t, nil
}

func sgdisk(args ...string) (string, error) {
	out, err := exec.Command("sgdisk", args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sgdisk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
