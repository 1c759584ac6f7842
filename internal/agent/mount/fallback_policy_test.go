package mount

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// A failed first step reboots into the next entry of the fallback order;
// recovery, the last one, and a failure to arm the entry do not reboot.
func TestLoopOrFallback(t *testing.T) {
	const (
		active   = "root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img"
		passive  = "root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img rd.cos.oemlabel=MY_OEM"
		recovery = "root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img"
	)
	loopErr := errors.New("the boot image /cOS/active.img is missing")
	for _, c := range []struct {
		name      string
		cmdline   string
		loop      error
		arm       error
		reboot    error
		wantErr   bool
		armed     string // entry armed, "" for none
		oemLabel  string
		rebooted  bool
		wantLines []string
	}{
		{name: "loop works", cmdline: active},
		{name: "active falls back", cmdline: active, loop: loopErr, wantErr: true, armed: "fallback", oemLabel: "COS_OEM", rebooted: true,
			wantLines: []string{`kairos: the boot image /cOS/active.img is missing: rebooting into the "fallback" entry`}},
		{name: "passive to recovery", cmdline: passive, loop: loopErr, wantErr: true, armed: "recovery", oemLabel: "MY_OEM", rebooted: true,
			wantLines: []string{`rebooting into the "recovery" entry`}},
		{name: "recovery is last", cmdline: recovery, loop: loopErr, wantErr: true},
		{name: "arming fails", cmdline: active, loop: loopErr, arm: errors.New("no COS_OEM"), wantErr: true, armed: "fallback", oemLabel: "COS_OEM",
			wantLines: []string{"kairos: cannot set the fallback entry: no COS_OEM"}},
		{name: "reboot fails", cmdline: active, loop: loopErr, reboot: errors.New("exit status 1"), wantErr: true, armed: "fallback", oemLabel: "COS_OEM", rebooted: true,
			wantLines: []string{"kairos: reboot: exit status 1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			var armed, oem string
			rebooted := false
			f := Fallback{
				Loop: func(string, io.Writer) error { return c.loop },
				Arm: func(b BootImage, entry string, _ io.Writer) error {
					armed, oem = entry, b.OEMLabel
					return c.arm
				},
				Reboot: func() error { rebooted = true; return c.reboot },
				Log:    &log,
			}
			err := f.LoopOrFallback(c.cmdline)
			if (err != nil) != c.wantErr || (err != nil && err != c.loop) {
				t.Errorf("error %v, want the loop's (%v)", err, c.loop)
			}
			if armed != c.armed || oem != c.oemLabel || rebooted != c.rebooted {
				t.Errorf("armed %q on %q, rebooted %v; want %q on %q, %v", armed, oem, rebooted, c.armed, c.oemLabel, c.rebooted)
			}
			for _, l := range c.wantLines {
				if !strings.Contains(log.String(), l) {
					t.Errorf("log lacks %q:\n%s", l, log.String())
				}
			}
			if len(c.wantLines) == 0 && log.Len() > 0 {
				t.Errorf("unexpected log:\n%s", log.String())
			}
		})
	}
}
