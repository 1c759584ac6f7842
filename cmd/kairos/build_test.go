package main

import (
	"runtime"
	"strings"
	"testing"

	"github.com/containerd/platforms"
)

func TestParsePlatforms(t *testing.T) {
	for _, c := range []struct {
		flag []string
		arch string
		want string // comma-separated, or an error substring after "!"
	}{
		{nil, "", "linux/" + runtime.GOARCH},
		{[]string{"linux/arm64"}, "", "linux/arm64"},
		{nil, "arm64", "linux/arm64"},
		{nil, "amd64,arm64", "linux/amd64,linux/arm64"},
		{[]string{"linux/amd64", "linux/arm64/v8"}, "", "linux/amd64,linux/arm64"},
		{[]string{"linux/arm64"}, "arm64", "!not both"},
		{nil, "arm64,arm64", "!named twice"},
		{[]string{"windows/amd64"}, "", "!linux images only"},
		{[]string{"linux/"}, "", "!want linux/amd64"},
	} {
		got, err := parsePlatforms(c.flag, c.arch)
		if strings.HasPrefix(c.want, "!") {
			if err == nil || !strings.Contains(err.Error(), c.want[1:]) {
				t.Errorf("%v %q: error %v, want %q", c.flag, c.arch, err, c.want[1:])
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %q: %v", c.flag, c.arch, err)
			continue
		}
		var names []string
		for _, p := range got {
			names = append(names, platforms.Format(p))
		}
		if s := strings.Join(names, ","); s != c.want {
			t.Errorf("%v %q: %s, want %s", c.flag, c.arch, s, c.want)
		}
	}
}
