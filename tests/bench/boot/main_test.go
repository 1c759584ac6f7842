package main

import (
	"testing"
	"time"
)

func TestParseAnalyze(t *testing.T) {
	out := "Startup finished in 5.100s (kernel) + 19.700s (initrd) + 1min 2.500s (userspace) = 1min 27.300s\n" +
		"multi-user.target reached after 55.900s in userspace\n" +
		"40.2s systemd-udev-settle.service\n36.1s systemd-networkd.service"
	analyze, blame, mu, err := parseAnalyze(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := 5100*time.Millisecond + 19700*time.Millisecond + 55900*time.Millisecond; mu != want {
		t.Errorf("multi-user %v, want %v", mu, want)
	}
	if blame != "40.2s systemd-udev-settle.service\n36.1s systemd-networkd.service" {
		t.Errorf("blame %q", blame)
	}
	if analyze == "" {
		t.Error("no analyze line")
	}
	if _, _, _, err := parseAnalyze("Bootup is not yet finished"); err == nil {
		t.Error("an unfinished boot parsed")
	}
}

func TestMedian(t *testing.T) {
	s := system{boots: []result{{login: 4 * time.Second}, {login: time.Second}, {login: 2 * time.Second}, {login: 10 * time.Second}}}
	med, lo, hi := s.median(func(r result) time.Duration { return r.login })
	if med != 3*time.Second || lo != time.Second || hi != 10*time.Second {
		t.Errorf("median %v (%v-%v), want 3s (1s-10s)", med, lo, hi)
	}
	s.boots = s.boots[:3]
	if med, _, _ = s.median(func(r result) time.Duration { return r.login }); med != 2*time.Second {
		t.Errorf("odd median %v, want 2s", med)
	}
}

func TestParseSystems(t *testing.T) {
	s, err := parseSystems("live, plain")
	if err != nil || !s["live"] || !s["plain"] || s["installed"] {
		t.Errorf("parseSystems: %v, %v", s, err)
	}
	for _, bad := range []string{"", "live,live", "debian", "live,"} {
		if _, err := parseSystems(bad); err == nil {
			t.Errorf("parseSystems(%q) accepted", bad)
		}
	}
}
