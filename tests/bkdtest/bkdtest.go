// Package bkdtest runs real BuildKit daemons for tests: each with its own
// state, on a unix socket or on TCP with mutual TLS, optionally inside a
// network namespace, trusting given registries over plain HTTP.
package bkdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/buildkit/client"

	"github.com/kairos-io/kairos/internal/buildkitd"
	"github.com/kairos-io/kairos/tests/testca"
)

// Options shape a daemon.
type Options struct {
	// TLS serves on a loopback TCP port with a certificate of this CA
	// and asks clients for one of it.
	TLS *testca.CA
	// HTTPRegistries are host:port reached over plain HTTP.
	HTTPRegistries []string
	// NetNS runs the daemon (and its builds) in that network namespace.
	NetNS string
}

// Daemon is a running buildkitd.
type Daemon struct {
	// Addr is what a client dials (unix:// or tcp://).
	Addr string
	// CA, Cert and Key are the client's TLS files (TLS daemons).
	CA, Cert, Key string
	Root, Log     string
}

// ClientOpts are the TLS options for a client of d.
func (d *Daemon) ClientOpts() []client.ClientOpt {
	if d.CA == "" {
		return nil
	}
	return []client.ClientOpt{client.WithServerConfig("127.0.0.1", d.CA), client.WithCredentials(d.Cert, d.Key)}
}

// Start runs a daemon until the test ends. buildkitd comes from PATH
// (./earthly.sh puts the one it builds there).
func Start(t testing.TB, o Options) *Daemon {
	t.Helper()
	bin, err := exec.LookPath("buildkitd")
	if err != nil {
		t.Fatalf("buildkitd not on PATH (./earthly.sh +test builds it): %v", err)
	}
	// Not t.TempDir: overlay snapshots may still be unmounting when the
	// test's own cleanup runs.
	dir, err := os.MkdirTemp("", "bkdtest-")
	if err != nil {
		t.Fatal(err)
	}
	d := &Daemon{Root: filepath.Join(dir, "root"), Log: filepath.Join(dir, "buildkitd.log")}
	var cfg strings.Builder
	for _, r := range o.HTTPRegistries {
		fmt.Fprintf(&cfg, "[registry.%q]\n  http = true\n  insecure = true\n", r)
	}
	cfgFile := filepath.Join(dir, "buildkitd.toml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--root", d.Root, "--config", cfgFile, "--oci-worker=true", "--containerd-worker=false", "--oci-worker-net=host"}
	if o.TLS != nil {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d.Addr = "tcp://" + l.Addr().String()
		l.Close()
		cert, key := o.TLS.Server(t, "127.0.0.1")
		ca, scert, skey := o.TLS.Files(t, dir, "server", cert, key)
		args = append(args, "--addr", d.Addr, "--tlscacert", ca, "--tlscert", scert, "--tlskey", skey)
		ccert, ckey := o.TLS.Client(t, "release")
		d.CA, d.Cert, d.Key = o.TLS.Files(t, dir, "client", ccert, ckey)
	} else {
		d.Addr = "unix://" + filepath.Join(dir, "buildkitd.sock")
		args = append(args, "--addr", d.Addr)
	}
	logf, err := os.Create(d.Log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if o.NetNS != "" {
		// nsenter, not `ip netns exec`: that one also remounts /sys, where
		// runc then finds no cgroup mount.
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + o.NetNS, bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting buildkitd: %v", err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logf.Close()
		exec.Command("sh", "-c", "grep "+dir+" /proc/mounts | cut -d' ' -f2 | sort -r | xargs -r umount -l").Run()
		os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := buildkitd.Dial(ctx, d.Addr, 60*time.Second, d.ClientOpts()...)
	if err != nil {
		log, _ := os.ReadFile(d.Log)
		t.Fatalf("buildkitd at %s did not answer: %v\n%s", d.Addr, err, log)
	}
	c.Close()
	return d
}
