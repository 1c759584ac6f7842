package service

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/host"
)

func TestEnable(t *testing.T) {
	for _, c := range []struct {
		name    string
		systemd bool
		fail    string // the tool that fails
		want    []string
		err     string
	}{
		{name: "systemd", systemd: true, want: []string{"systemctl enable --now --no-block k3s"}},
		{name: "openrc", want: []string{"rc-update add k3s default", "rc-service k3s start"}},
		{name: "systemctl fails", systemd: true, fail: "systemctl",
			want: []string{"systemctl enable --now --no-block k3s"}, err: "boom: output of systemctl"},
		{name: "rc-update fails", fail: "rc-update",
			want: []string{"rc-update add k3s default"}, err: "rc-update add k3s default: boom: output of rc-update"},
		{name: "rc-service fails", fail: "rc-service",
			want: []string{"rc-update add k3s default", "rc-service k3s start"}, err: "rc-service k3s start: boom: output of rc-service"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := host.New(t.TempDir())
			if c.systemd {
				if err := os.MkdirAll(h.SystemdRun, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			var ran []string
			h.Command = func(name string, args ...string) ([]byte, error) {
				ran = append(ran, strings.Join(append([]string{name}, args...), " "))
				if name == c.fail {
					return []byte("output of " + name), errors.New("boom")
				}
				return nil, nil
			}
			if got := Systemd(h); got != c.systemd {
				t.Errorf("Systemd = %v", got)
			}
			err := Enable(h, "k3s")
			if !slices.Equal(ran, c.want) {
				t.Errorf("ran %q, want %q", ran, c.want)
			}
			switch {
			case c.err == "" && err != nil:
				t.Errorf("error: %v", err)
			case c.err != "" && (err == nil || err.Error() != c.err):
				t.Errorf("error %v, want %q", err, c.err)
			}
		})
	}
}
