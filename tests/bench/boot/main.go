// Command boot is a benchmark, not a test: how long a Kairos node takes to
// boot against the distro it is made from, in one run. It boots, each in
// QEMU under UEFI (OVMF) and one after the other:
//
//   - our live ISO (as a CD);
//   - an installed disk (the raw disk `kairos artifacts raw` writes, with a
//     cloud-config user), measured on its second boot, as a node boots
//     every day (the first one grows COS_PERSISTENT);
//   - plain Debian: the same cached base image (`kairos base`) with the
//     same kernel package from the same mirror, Debian's own initramfs
//     (initramfs-tools), systemd-networkd with the same DHCP .network, grub
//     on the ESP; no Kairos part;
//
// and prints for each the time from QEMU's start to the login prompt on
// the serial console, `systemd-analyze`'s time to multi-user.target and
// the top of `systemd-analyze blame` and the critical chains of the
// default target and of the serial console's getty (a getty is Type=idle:
// its prompt waits for the boot's jobs), with the ratios ours/plain. Boots
// under emulation vary by several seconds: each system is booted -samples
// times (after one boot that is not measured: the installed disk grows
// COS_PERSISTENT on its first, plain Debian makes its machine id), the
// systems in turn (the host's speed drifts over a run), and the medians
// are compared, the spread printed beside them.
//
//	sudo tests/bench/boot.sh [-samples 5] [-iso X.iso -image X.oci.tar] [-systems plain,live,installed]
//
// Target (issue 22): at most 1.2x for the live ISO and the installed disk.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

func main() {
	iso := flag.String("iso", "", "live ISO to boot (default: built here with kairos build)")
	image := flag.String("image", "", "OCI archive of the image the installed disk is written from (default: built here)")
	work := flag.String("work", "", "work directory (default: a new one under /var/tmp, removed after)")
	plain := flag.String("plain", "", "plain Debian disk made by an earlier run (kept in -work): not made again")
	samples := flag.Int("samples", 5, "measured boots of each system; medians are compared (3 are too few: runs differ by more than the target's margin)")
	only := flag.String("systems", "plain,live,installed", "systems to boot, comma-separated (plain, live, installed); the ratios need plain")
	flag.Parse()
	if *samples < 1 {
		fmt.Fprintln(os.Stderr, "boot bench: -samples must be at least 1")
		os.Exit(2)
	}
	systems, err := parseSystems(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "boot bench: -systems:", err)
		os.Exit(2)
	}
	if err := run(*iso, *image, *work, *plain, *samples, systems); err != nil {
		fmt.Fprintln(os.Stderr, "boot bench:", err)
		os.Exit(1)
	}
}

// result is one boot's figures.
type result struct {
	login     time.Duration // QEMU start to the login prompt
	kernel    time.Duration // QEMU start to the kernel's first line: firmware and GRUB
	analyze   string        // systemd-analyze time
	multiUser time.Duration // multi-user.target, from the kernel's start
	blame     string
	chain     string // systemd-analyze critical-chain of the default target and the serial console's getty
}

// systemNames are the -systems names, in boot order.
var systemNames = []string{"plain", "live", "installed"}

// parseSystems reads -systems: names from systemNames, each once.
func parseSystems(s string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(systemNames, n) {
			return nil, fmt.Errorf("%q is not one of %s", n, strings.Join(systemNames, ", "))
		}
		if set[n] {
			return nil, fmt.Errorf("%q named twice", n)
		}
		set[n] = true
	}
	return set, nil
}

// machine is one system to boot: its QEMU options and login.
type machine struct {
	name, user, password string
	o                    qemu.Options
	warmup               bool // boot once unmeasured first
}

// system is one system's measured boots.
type system struct {
	name  string
	boots []result
}

// median returns the median of f over the boots, and the smallest and
// largest value.
func (s system) median(f func(result) time.Duration) (med, lo, hi time.Duration) {
	v := make([]time.Duration, len(s.boots))
	for i, b := range s.boots {
		v[i] = f(b)
	}
	slices.Sort(v)
	med = v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return med, v[0], v[len(v)-1]
}

func run(iso, image, work, plain string, samples int, systems map[string]bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if work == "" {
		if work, err = os.MkdirTemp("/var/tmp", "kairos-bootbench-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	kairos := filepath.Join(work, "kairos")
	if err := sh(root, "go", "build", "-o", kairos, "./cmd/kairos"); err != nil {
		return err
	}
	if (systems["live"] && iso == "") || (systems["installed"] && image == "") {
		agent := filepath.Join(work, "kairos-agent")
		writer := filepath.Join(work, "kairos-frontend")
		if err := sh(root, "env", "CGO_ENABLED=0", "go", "build", "-o", agent, "./cmd/kairos-agent"); err != nil {
			return err
		}
		if err := sh(root, "env", "CGO_ENABLED=0", "go", "build", "-o", filepath.Join(work, "kairos-p2p"), "./cmd/kairos-p2p"); err != nil {
			return err
		}
		if err := sh(root, "env", "CGO_ENABLED=0", "go", "build", "-o", writer, "./cmd/kairos-frontend"); err != nil {
			return err
		}
		out := filepath.Join(work, "out")
		if err := sh(root, kairos, "build", "--flavor", "debian", "--version", "v0.0.0-bench", "--agent", agent, "--writer", writer,
			"--output", out, "--progress", "quiet", "--target", "image", "--target", "iso"); err != nil {
			return err
		}
		isos, _ := filepath.Glob(filepath.Join(out, "*.iso"))
		archives, _ := filepath.Glob(filepath.Join(out, "*.oci.tar"))
		if len(isos) != 1 || len(archives) != 1 {
			return fmt.Errorf("kairos build wrote %v and %v", isos, archives)
		}
		iso, image = isos[0], archives[0]
	}
	machines := map[string]machine{
		// Live media start from the same state every boot.
		"live": {"Kairos live ISO", "kairos", "kairos", qemu.Options{CDROM: iso}, false},
	}
	if systems["installed"] {
		// The installed disk: the image's raw disk with a user to log in.
		cc := filepath.Join(work, "user.yaml")
		if err := os.WriteFile(cc, []byte("#cloud-config\nusers:\n  - name: bench\n    passwd: bench-Boot\n    groups: [admin]\n"), 0o600); err != nil {
			return err
		}
		disks := filepath.Join(work, "disks")
		if err := sh(root, kairos, "artifacts", "raw", "--source", "oci-archive:"+image, "--output", disks, "--cloud-config", cc); err != nil {
			return err
		}
		raws, _ := filepath.Glob(filepath.Join(disks, "*.raw"))
		if len(raws) != 1 {
			return fmt.Errorf("kairos artifacts raw wrote %v", raws)
		}
		machines["installed"] = machine{"Kairos installed disk", "bench", "bench-Boot", qemu.Options{Disks: []string{raws[0]}}, true}
	}
	if systems["plain"] {
		if plain == "" {
			if plain, err = plainDebian(root, kairos, work); err != nil {
				return fmt.Errorf("plain Debian: %w", err)
			}
		}
		// A copy: a boot writes to the disk.
		plainCopy := filepath.Join(work, "plain-boot.qcow2")
		if err := sh(root, "qemu-img", "create", "-q", "-f", "qcow2", "-b", plain, "-F", "raw", plainCopy); err != nil {
			return err
		}
		machines["plain"] = machine{"plain Debian", "root", "bench-Boot", qemu.Options{Disks: []string{plainCopy}}, true}
	}

	ctx := context.Background()
	var order []machine
	for _, n := range systemNames {
		if systems[n] {
			order = append(order, machines[n])
		}
	}
	res, err := bootAll(ctx, order, work, samples)
	if err != nil {
		return err
	}

	login := func(r result) time.Duration { return r.login }
	kernel := func(r result) time.Duration { return r.kernel }
	multiUser := func(r result) time.Duration { return r.multiUser }
	var baseLogin, baseMU time.Duration
	if systems["plain"] {
		baseLogin, _, _ = res[0].median(login)
		baseMU, _, _ = res[0].median(multiUser)
	}
	ratio := func(d, base time.Duration) string {
		if base == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", d.Seconds()/base.Seconds())
	}
	fmt.Printf("\n%d boot(s) each, UEFI, QEMU TCG; medians (min-max)\n", samples)
	fmt.Printf("%-24s %22s %22s %8s %8s %22s\n", "", "login", "multi-user", "login/", "m-u/", "firmware+GRUB")
	for _, s := range res {
		l, llo, lhi := s.median(login)
		m, mlo, mhi := s.median(multiUser)
		k, klo, khi := s.median(kernel)
		fmt.Printf("%-24s %22s %22s %8s %8s %22s\n", s.name, spread(l, llo, lhi), spread(m, mlo, mhi),
			ratio(l, baseLogin), ratio(m, baseMU), spread(k, klo, khi))
	}
	fmt.Println("(ratios of the medians against plain Debian; target <= 1.2 for the live ISO and the installed disk)")
	for _, s := range res {
		last := s.boots[len(s.boots)-1]
		fmt.Printf("\n%s, last boot: %s\n%s\n%s\n", s.name, last.analyze, last.blame, last.chain)
	}
	return nil
}

func spread(med, lo, hi time.Duration) string {
	return fmt.Sprintf("%.1fs (%.1f-%.1f)", med.Seconds(), lo.Seconds(), hi.Seconds())
}

// bootAll boots each machine samples times, each boot in a new QEMU,
// round-robin (one boot of each machine, then the next round): the speed
// of an emulating host drifts by a quarter over a run, and taking the
// systems' boots in turn puts the same drift in every system's figures, so
// the ratios hold. Machines with warmup first boot once unmeasured. Each
// measured boot times the login prompt, logs in, reads systemd-analyze and
// shuts down cleanly.
func bootAll(ctx context.Context, ms []machine, work string, samples int) ([]system, error) {
	res := make([]system, len(ms))
	for i, m := range ms {
		res[i].name = m.name
	}
	for round := -1; round < samples; round++ {
		for i, m := range ms {
			if round < 0 && !m.warmup {
				continue
			}
			o := m.o
			o.Firmware = qemu.UEFI
			o.LogPath = filepath.Join(work, "logs", fmt.Sprintf("%s-%d.log", strings.ReplaceAll(m.name, " ", "-"), round+1))
			what := fmt.Sprintf("boot %d of %d", round+1, samples)
			if round < 0 {
				what = "unmeasured first boot"
			}
			fmt.Fprintf(os.Stderr, "boot bench: %s, %s\n", m.name, what)
			r, err := bootOnce(ctx, o, m.user, m.password, round >= 0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.name, err)
			}
			if round >= 0 {
				res[i].boots = append(res[i].boots, r)
			}
		}
	}
	return res, nil
}

// kernelStart is the kernel's first line on the serial console.
var kernelStart = regexp.MustCompile(`Linux version \d`)

func bootOnce(ctx context.Context, o qemu.Options, user, password string, measure bool) (result, error) {
	var r result
	start := time.Now()
	m, err := qemu.Start(o)
	if err != nil {
		return r, err
	}
	defer m.Stop()
	if _, err := m.WaitFor(ctx, kernelStart, 8*time.Minute); err != nil {
		return r, err
	}
	r.kernel = time.Since(start)
	if _, err := m.WaitFor(ctx, qemu.LoginPrompt, 8*time.Minute); err != nil {
		return r, err
	}
	r.login = time.Since(start)
	if err := m.LoginAtPrompt(ctx, user, password); err != nil {
		return r, err
	}
	sudo := "sudo "
	if user == "root" {
		sudo = ""
	}
	if measure {
		// systemd-analyze answers once the boot is done.
		out, _, err := m.Run(ctx, sudo+"systemctl is-system-running --wait >/dev/null; systemd-analyze time | head -2; systemd-analyze blame --no-pager | head -8", 5*time.Minute)
		if err != nil {
			return r, err
		}
		if r.analyze, r.blame, r.multiUser, err = parseAnalyze(out); err != nil {
			return r, err
		}
		// What the login prompt waited for: the getty's units, and the
		// boot's jobs (a getty is Type=idle: systemd holds it back until
		// the jobs are done, 5 s at most).
		if r.chain, _, err = m.Run(ctx, sudo+"systemd-analyze critical-chain --no-pager default.target serial-getty@ttyS0.service", time.Minute); err != nil {
			return r, err
		}
	}
	// A clean shutdown (machines run with -no-reboot): the next boot is
	// an ordinary one, not a recovery from a power cut.
	m.Send(sudo + "systemctl is-system-running --wait >/dev/null; " + sudo + "poweroff\n")
	if err := m.Wait(5 * time.Minute); err != nil {
		return r, fmt.Errorf("no clean shutdown: %w", err)
	}
	return r, nil
}

// parseAnalyze reads `systemd-analyze time` and the top of `blame`:
// "Startup finished in 5.1s (kernel) + 19.7s (initrd) + ..." and
// "multi-user.target reached after 55.9s in userspace" give the target's
// time from the kernel's start.
func parseAnalyze(out string) (analyze, blame string, multiUser time.Duration, err error) {
	lines := strings.SplitN(strings.TrimSpace(out), "\n", 3)
	analyze = strings.Join(lines[:min(2, len(lines))], "; ")
	if len(lines) == 3 {
		blame = lines[2]
	}
	mu := regexp.MustCompile(`(?:multi-user|graphical).target reached after (.*) in userspace`).FindStringSubmatch(out)
	if mu == nil {
		return "", "", 0, fmt.Errorf("systemd-analyze time: %q", out)
	}
	userspace, err := analyzeDuration(mu[1])
	if err != nil {
		return "", "", 0, err
	}
	var sum time.Duration
	for _, p := range regexp.MustCompile(`((?:\d+min )?[\d.]+m?s) \((kernel|initrd)\)`).FindAllStringSubmatch(out, -1) {
		d, err := analyzeDuration(p[1])
		if err != nil {
			return "", "", 0, err
		}
		sum += d
	}
	return analyze, blame, sum + userspace, nil
}

// analyzeDuration reads systemd's durations: 1min 2.345s, 850ms, 5.1s.
func analyzeDuration(s string) (time.Duration, error) {
	s = strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	s = strings.Replace(s, "min", "m", 1)
	return time.ParseDuration(s)
}

// plainDebian makes a disk of the cached Debian base with the same kernel,
// Debian's initramfs, systemd-networkd and grub: no Kairos part.
func plainDebian(root, kairos, work string) (string, error) {
	out, err := exec.Command(kairos, "base", "--flavor", "debian").Output()
	if err != nil {
		return "", fmt.Errorf("kairos base: %w", err)
	}
	ref := strings.TrimPrefix(strings.TrimSpace(string(out)), "oci-layout://")
	layoutDir, digest, ok := strings.Cut(ref, "@")
	if !ok {
		return "", fmt.Errorf("kairos base gave %q, want an OCI layout", out)
	}
	script := filepath.Join(root, "tests", "bench", "boot", "plain-debian.sh")
	disk := filepath.Join(work, "plain-debian.raw")
	if err := sh(root, "bash", script, layoutDir, digest, filepath.Join(work, "plain"), disk); err != nil {
		return "", err
	}
	return disk, nil
}

func sh(dir, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("run from the repository: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
