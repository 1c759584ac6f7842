package builders

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"ca.pem", "cert.pem", "key.pem"} {
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600)
	}
	ca, cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	good := map[string]Spec{
		"local=unix:///run/buildkit/buildkitd.sock": {Name: "local", Addr: "unix:///run/buildkit/buildkitd.sock"},
		"arm=tcp://10.0.0.5:1234,platforms=linux/arm64,ca=" + ca + ",cert=" + cert + ",key=" + key: {
			Name: "arm", Addr: "tcp://10.0.0.5:1234", Platforms: []ocispec.Platform{{OS: "linux", Architecture: "arm64"}},
			CA: ca, Cert: cert, Key: key,
		},
		`b=tcp://h:1,"platforms=linux/amd64,linux/arm64",jobs=2`: {Name: "b", Addr: "tcp://h:1", Jobs: 2, Platforms: []ocispec.Platform{
			{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}},
		`b=tcp://h:1,platforms=linux/amd64,linux/arm64`: {Name: "b", Addr: "tcp://h:1", Platforms: []ocispec.Platform{
			{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}},
		`b=tcp://h:1,platforms=linux/amd64;linux/arm/v7`: {Name: "b", Addr: "tcp://h:1", Platforms: []ocispec.Platform{
			{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}}},
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got.String() != want.String() || got.Jobs != want.Jobs || got.CA != want.CA || got.Cert != want.Cert || got.Key != want.Key || len(got.Platforms) != len(want.Platforms) {
			t.Errorf("Parse(%q) = %+v, want %+v", in, got, want)
			continue
		}
		for i := range got.Platforms {
			if platforms.Format(got.Platforms[i]) != platforms.Format(want.Platforms[i]) {
				t.Errorf("Parse(%q) platform %d = %v, want %v", in, i, got.Platforms[i], want.Platforms[i])
			}
		}
	}
	bad := map[string]string{
		"":                         "name=<address>",
		"tcp://h:1":                "name=<address>",
		"../x=tcp://h:1":           "must be letters",
		"a=tcp://h:1,nope=1":       "unknown option",
		"a=tcp://h:1,cert=" + cert: "go together",
		"a=tcp://h:1,cert=" + cert + ",key=" + key: "needs ca=",
		"a=unix:///s,ca=" + ca:                     "tcp://",
		"a=tcp://h:1,ca=/nonexistent.pem":          "no such file",
		"a=tcp://h:1,platforms=linux/":             "platform",
		"a=tcp://h:1,jobs=0":                       "1 to 64",
	}
	for in, want := range bad {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", in, err, want)
		}
	}
	if s := (Spec{Name: "arm", Addr: "tcp://h:1", CA: ca, Cert: cert}).String(); strings.Contains(s, dir) || !strings.Contains(s, "TLS") {
		t.Errorf("String() = %q: shows file names or hides TLS", s)
	}
}

func TestHostOf(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://10.0.0.5:1234": "10.0.0.5", "tcp://builder.example.com:1234": "builder.example.com",
		"tcp://[::1]:1234": "::1", "tcp://h": "h",
	} {
		if got := hostOf(in); got != want {
			t.Errorf("hostOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSchedule(t *testing.T) {
	amd, arm := platforms.MustParse("linux/amd64"), platforms.MustParse("linux/arm64")
	bs := []*Builder{
		{Spec: Spec{Name: "a", Platforms: []ocispec.Platform{amd}, Jobs: 1}},
		{Spec: Spec{Name: "b", Platforms: []ocispec.Platform{amd}, Jobs: 1}},
		{Spec: Spec{Name: "c", Platforms: []ocispec.Platform{arm}, Jobs: 1}},
	}
	jobs := []Job{
		{Name: "core-amd64", Platform: amd}, {Name: "standard-amd64", Platform: amd},
		{Name: "core-arm64", Platform: arm}, {Name: "fails", Platform: amd},
		{Name: "riscv", Platform: platforms.MustParse("linux/riscv64")},
	}
	var running, peak atomic.Int32
	var mu sync.Mutex
	ran := map[string]string{}
	out := Schedule(context.Background(), bs, jobs, func(ctx context.Context, b *Builder, i int) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		mu.Lock()
		ran[jobs[i].Name] = b.Name
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		if jobs[i].Name == "fails" {
			return errors.New("base cannot be fetched")
		}
		return nil
	})
	if peak.Load() < 2 {
		t.Errorf("at most %d jobs ran at once: the builders did not work concurrently", peak.Load())
	}
	if ran["core-arm64"] != "c" {
		t.Errorf("the arm64 job ran on %q, want c", ran["core-arm64"])
	}
	for _, n := range []string{"core-amd64", "standard-amd64", "fails"} {
		if b := ran[n]; b != "a" && b != "b" {
			t.Errorf("%s ran on %q, want an amd64 builder", n, b)
		}
	}
	for i, o := range out {
		switch jobs[i].Name {
		case "fails":
			if o.Err == nil {
				t.Errorf("the failing job reports no error")
			}
		case "riscv":
			if !errors.Is(o.Err, ErrNoBuilder) || o.Builder != "" || !strings.Contains(o.Err.Error(), "linux/riscv64") {
				t.Errorf("riscv: %+v, want ErrNoBuilder naming the platform", o)
			}
		default:
			if o.Err != nil {
				t.Errorf("%s: %v (one failing job must not stop the others)", jobs[i].Name, o.Err)
			}
		}
	}
}
