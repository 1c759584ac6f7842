package main

import (
	"slices"
	"testing"
)

func TestNewerReleases(t *testing.T) {
	tags := []string{"latest", "v1.0.0", "v1.2.0", "v1.10.0", "v1.2.0-rc1", "v0.9.0", "v2.0.0-beta", "main"}
	if got := NewerReleases(tags, "v1.2.0", false); !slices.Equal(got, []string{"v2.0.0-beta", "v1.10.0"}) {
		t.Errorf("newer than v1.2.0: %v", got)
	}
	if got := NewerReleases(tags, "v1.2.0", true); len(got) != 6 || got[0] != "v2.0.0-beta" || got[5] != "v0.9.0" {
		t.Errorf("all: %v", got)
	}
	if got := NewerReleases(tags, "", false); len(got) != 6 {
		t.Errorf("unknown current version lists all versions: %v", got)
	}
}
