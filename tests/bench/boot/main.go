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
// the top of `systemd-analyze blame`, with the ratios ours/plain.
//
//	sudo tests/bench/boot.sh [-iso X.iso -image X.oci.tar]
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
	"strings"
	"time"

	"github.com/kairos-io/kairos/tests/qemu"
)

func main() {
	iso := flag.String("iso", "", "live ISO to boot (default: built here with kairos build)")
	image := flag.String("image", "", "OCI archive of the image the installed disk is written from (default: built here)")
	work := flag.String("work", "", "work directory (default: a new one under /var/tmp, removed after)")
	plain := flag.String("plain", "", "plain Debian disk made by an earlier run (kept in -work): not made again")
	flag.Parse()
	if err := run(*iso, *image, *work, *plain); err != nil {
		fmt.Fprintln(os.Stderr, "boot bench:", err)
		os.Exit(1)
	}
}

// result is one boot's figures.
type result struct {
	name      string
	login     time.Duration // QEMU start to the login prompt
	analyze   string        // systemd-analyze time
	multiUser time.Duration // multi-user.target, from the kernel's start
	blame     string
}

func run(iso, image, work, plain string) error {
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
	if iso == "" || image == "" {
		agent := filepath.Join(work, "kairos-agent")
		writer := filepath.Join(work, "kairos-frontend")
		if err := sh(root, "env", "CGO_ENABLED=0", "go", "build", "-o", agent, "./cmd/kairos-agent"); err != nil {
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
	if plain == "" {
		if plain, err = plainDebian(root, kairos, work); err != nil {
			return fmt.Errorf("plain Debian: %w", err)
		}
	}

	ctx := context.Background()
	var res []result
	// A copy: a boot writes to the disk.
	plainCopy := filepath.Join(work, "plain-boot.qcow2")
	if err := sh(root, "qemu-img", "create", "-q", "-f", "qcow2", "-b", plain, "-F", "raw", plainCopy); err != nil {
		return err
	}
	r, err := boot(ctx, "plain Debian", qemu.Options{Disks: []string{plainCopy}}, "root", "bench-Boot", work, 0)
	if err != nil {
		return err
	}
	res = append(res, r)
	if r, err = boot(ctx, "Kairos live ISO", qemu.Options{CDROM: iso}, "kairos", "kairos", work, 0); err != nil {
		return err
	}
	res = append(res, r)
	if r, err = boot(ctx, "Kairos installed disk", qemu.Options{Disks: []string{raws[0]}}, "bench", "bench-Boot", work, 1); err != nil {
		return err
	}
	res = append(res, r)

	base := res[0]
	fmt.Printf("\n%-24s %10s %10s %8s %8s\n", "boot (UEFI, QEMU TCG)", "login", "multi-user", "login/", "m-u/")
	for _, r := range res {
		fmt.Printf("%-24s %9.1fs %9.1fs %8.2f %8.2f\n", r.name, r.login.Seconds(), r.multiUser.Seconds(),
			r.login.Seconds()/base.login.Seconds(), r.multiUser.Seconds()/base.multiUser.Seconds())
	}
	fmt.Println("(ratios against plain Debian; target <= 1.2 for the live ISO and the installed disk)")
	for _, r := range res {
		fmt.Printf("\n%s: %s\n%s\n", r.name, r.analyze, r.blame)
	}
	return nil
}

// boot starts a machine, times the login prompt, logs in and reads
// systemd-analyze. reboots > 0 boots that many times first and measures
// the next boot.
func boot(ctx context.Context, name string, o qemu.Options, user, password, work string, reboots int) (result, error) {
	r := result{name: name}
	o.Firmware, o.LogPath = qemu.UEFI, filepath.Join(work, "logs", strings.ReplaceAll(name, " ", "-")+".log")
	for i := 0; i <= reboots; i++ {
		start := time.Now()
		m, err := qemu.Start(o)
		if err != nil {
			return r, err
		}
		if _, err := m.WaitFor(ctx, qemu.LoginPrompt, 8*time.Minute); err != nil {
			m.Stop()
			return r, fmt.Errorf("%s: %w", name, err)
		}
		r.login = time.Since(start)
		if i < reboots {
			// Log in and reboot cleanly: the next boot is the measured one.
			if err := m.LoginAtPrompt(ctx, user, password); err != nil {
				m.Stop()
				return r, fmt.Errorf("%s: %w", name, err)
			}
			m.Send("sudo systemctl is-system-running --wait >/dev/null; sudo reboot\n")
			if err := m.Wait(5 * time.Minute); err != nil {
				m.Stop()
				return r, fmt.Errorf("%s: no reboot: %w", name, err)
			}
			continue
		}
		err = func() error {
			defer m.Stop()
			if err := m.LoginAtPrompt(ctx, user, password); err != nil {
				return err
			}
			sudo := "sudo "
			if user == "root" {
				sudo = ""
			}
			// systemd-analyze answers once the boot is done.
			out, _, err := m.Run(ctx, sudo+"systemctl is-system-running --wait >/dev/null; systemd-analyze time | head -2; systemd-analyze blame --no-pager | head -8", 5*time.Minute)
			if err != nil {
				return err
			}
			lines := strings.SplitN(strings.TrimSpace(out), "\n", 3)
			r.analyze = strings.Join(lines[:min(2, len(lines))], "; ")
			if len(lines) == 3 {
				r.blame = lines[2]
			}
			// "Startup finished in 5.1s (kernel) + 19.7s (initrd) + ..." and
			// "multi-user.target reached after 55.9s in userspace": the
			// target's time from the kernel's start.
			mu := regexp.MustCompile(`(?:multi-user|graphical).target reached after (.*) in userspace`).FindStringSubmatch(out)
			if mu == nil {
				return fmt.Errorf("systemd-analyze time: %q", out)
			}
			userspace, err := analyzeDuration(mu[1])
			if err != nil {
				return err
			}
			var sum time.Duration
			for _, p := range regexp.MustCompile(`((?:\d+min )?[\d.]+m?s) \((kernel|initrd)\)`).FindAllStringSubmatch(out, -1) {
				d, err := analyzeDuration(p[1])
				if err != nil {
					return err
				}
				sum += d
			}
			r.multiUser = sum + userspace
			return nil
		}()
		if err != nil {
			return r, fmt.Errorf("%s: %w", name, err)
		}
	}
	return r, nil
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
