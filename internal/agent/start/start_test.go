package start

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/kairos-io/kairos/internal/agent/state"
	"github.com/kairos-io/kairos/internal/cloudconfig"
)

const (
	live     = "BOOT_IMAGE=/boot/kernel root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs"
	active   = "root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img"
	passive  = "root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img upgrade_failure"
	recovery = "root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img"
)

func TestDecideAndRun(t *testing.T) {
	for _, c := range []struct {
		name    string
		cmdline string
		auto    bool
		want    Plan
		calls   []string
		out     string
	}{
		{name: "live", cmdline: live, auto: true,
			want: Plan{Message: "kairos-agent start: live media without install-mode: nothing to do"},
			out:  "kairos-agent start: live media without install-mode: nothing to do\n"},
		{name: "live install-mode without auto", cmdline: live + " install-mode",
			want: Plan{Message: "kairos-agent start: install-mode, but the cloud-config does not say install.auto: true; install with 'kairos-agent install' or 'manual-install'"},
			out:  "kairos-agent start: install-mode, but the cloud-config does not say install.auto: true; install with 'kairos-agent install' or 'manual-install'\n"},
		{name: "live install-mode auto", cmdline: live + " install-mode", auto: true,
			want: Plan{Action: Install}, calls: []string{"install"}},
		{name: "netboot install-mode auto", cmdline: "netboot install-mode", auto: true,
			want: Plan{Action: Install}, calls: []string{"install"}},
		{name: "recovery", cmdline: recovery,
			want: Plan{Message: "kairos-agent start: recovery: nothing to deploy"},
			out:  "kairos-agent start: recovery: nothing to deploy\n"},
		{name: "recovery install-mode does not install", cmdline: recovery + " install-mode", auto: true,
			want: Plan{Message: "kairos-agent start: recovery: nothing to deploy"},
			out:  "kairos-agent start: recovery: nothing to deploy\n"},
		{name: "recovery reset", cmdline: recovery + " kairos.reset",
			want: Plan{Action: Reset}, calls: []string{"reset"}},
		{name: "active", cmdline: active,
			want: Plan{Action: Deploy, ConfirmBoot: true}, calls: []string{"confirm", "deploy"}},
		{name: "active with kairos.reset does not reset", cmdline: active + " kairos.reset",
			want: Plan{Action: Deploy, ConfirmBoot: true}, calls: []string{"confirm", "deploy"}},
		{name: "passive", cmdline: passive,
			want: Plan{Action: Deploy}, calls: []string{"deploy"}},
		{name: "unknown", cmdline: "quiet",
			want: Plan{Action: Deploy}, calls: []string{"deploy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Decide(state.DetectBootMode(c.cmdline), c.cmdline, c.auto)
			if got != c.want {
				t.Fatalf("Decide = %+v, want %+v", got, c.want)
			}
			var calls []string
			var out bytes.Buffer
			n := fakeNode(&calls, &out, nil)
			if err := n.Run(context.Background(), got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(calls, c.calls) || out.String() != c.out {
				t.Errorf("ran %q printing %q; want %q printing %q", calls, out.String(), c.calls, c.out)
			}
		})
	}
}

// A boot that cannot be confirmed is reported and still deploys; the
// errors of install, reset and deploy are start's.
func TestRunErrors(t *testing.T) {
	boom := errors.New("boom")
	for _, c := range []struct {
		plan  Plan
		fail  string
		err   bool
		warns []string
	}{
		{plan: Plan{Action: Deploy, ConfirmBoot: true}, fail: "confirm", warns: []string{"clearing boot assessment: boom"}},
		{plan: Plan{Action: Deploy, ConfirmBoot: true}, fail: "deploy", err: true},
		{plan: Plan{Action: Install}, fail: "install", err: true},
		{plan: Plan{Action: Reset}, fail: "reset", err: true},
	} {
		var calls []string
		var warns []string
		n := fakeNode(&calls, &bytes.Buffer{}, func(s string) error {
			if s == c.fail {
				return boom
			}
			return nil
		})
		n.Warn = func(f string, a ...any) { warns = append(warns, fmt.Sprintf(f, a...)) }
		err := n.Run(context.Background(), c.plan)
		if (err != nil) != c.err || (err != nil && !errors.Is(err, boom)) {
			t.Errorf("%+v failing %s: error %v", c.plan, c.fail, err)
		}
		if !slices.Equal(warns, c.warns) {
			t.Errorf("%+v failing %s: warnings %q, want %q", c.plan, c.fail, warns, c.warns)
		}
	}
}

func fakeNode(calls *[]string, out *bytes.Buffer, fail func(string) error) Node {
	call := func(s string) error {
		*calls = append(*calls, s)
		if fail != nil {
			return fail(s)
		}
		return nil
	}
	return Node{
		Out:         out,
		Install:     func(context.Context) error { return call("install") },
		Reset:       func(context.Context) error { return call("reset") },
		ConfirmBoot: func() error { return call("confirm") },
		Deploy:      func() error { return call("deploy") },
		Warn:        func(string, ...any) {},
	}
}

func TestAutoDevice(t *testing.T) {
	for _, c := range []struct {
		values map[string]any
		want   string
	}{
		{nil, "auto"},
		{map[string]any{"install": map[string]any{}}, "auto"},
		{map[string]any{"install": map[string]any{"device": ""}}, "auto"},
		{map[string]any{"install": map[string]any{"device": "/dev/vda"}}, "/dev/vda"},
		{map[string]any{"install": map[string]any{"device": "auto"}}, "auto"},
	} {
		if got := AutoDevice(cloudconfig.Merged{Values: c.values}); got != c.want {
			t.Errorf("AutoDevice(%v) = %q, want %q", c.values, got, c.want)
		}
	}
}
