package fstree

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// SourceDateEpoch returns the time in the SOURCE_DATE_EPOCH environment
// variable (https://reproducible-builds.org/specs/source-date-epoch/), the
// time writers record for generated entries and volumes. It returns the
// zero Time when the variable is unset or empty, and an error when it is
// not a decimal number of seconds.
func SourceDateEpoch() (time.Time, error) {
	v := strings.TrimSpace(os.Getenv("SOURCE_DATE_EPOCH"))
	if v == "" {
		return time.Time{}, nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds: %w", v, err)
	}
	return time.Unix(sec, 0).UTC(), nil
}
