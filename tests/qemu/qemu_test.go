package qemu

import "testing"

// A kernel report printed over a command's output (seen: an RCU stall
// dump around `id -un` under emulation) is not part of it.
func TestKernelLinesRemoved(t *testing.T) {
	out := "[   74.670003] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n" +
		"[   74.651402] NMI backtrace for cpu 1\n" +
		"tester\n" +
		"[   74.651402] RBP: 0000000000000016 R08: 0000000000000000\n"
	if got := kernelLines.ReplaceAllString(out, ""); got != "tester\n" {
		t.Errorf("got %q", got)
	}
	if got := kernelLines.ReplaceAllString("[x] not a kernel line\n", ""); got != "[x] not a kernel line\n" {
		t.Errorf("got %q", got)
	}
}
