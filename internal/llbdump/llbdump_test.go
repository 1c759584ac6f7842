package llbdump

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

var testEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// knownFile stands for a file whose origin the caller knows (an embedded
// overlay file in the frontend's golden tests).
var knownFile = []byte("#!/bin/sh\necho known\n")

// testDef marshals a small build with one op of each kind the dumper
// handles: sources (image and local), a file op (mkdir, generated and
// known mkfiles, copy, symlink, rm), and a shell exec with a cache mount.
func testDef(t *testing.T) *llb.Definition {
	t.Helper()
	base := llb.Image("docker.io/library/alpine:3.20")
	ctx := llb.Local("ctx")
	files := base.File(
		llb.Mkdir("/etc/app", 0o755, llb.WithParents(true), llb.WithCreatedTime(testEpoch)).
			Mkfile("/etc/app/release", 0o644, []byte("NAME=test\nVERSION=1\n"), llb.WithCreatedTime(testEpoch)).
			Mkfile("/usr/bin/known", 0o755, knownFile, llb.WithCreatedTime(testEpoch)).
			Copy(ctx, "/bin/tool", "/usr/bin/tool", &llb.CopyInfo{Mode: &llb.ChmodOpt{Mode: 0o755}, FollowSymlinks: true, CreatedTime: &testEpoch}).
			Symlink("/usr/bin/tool", "/usr/bin/t", llb.WithCreatedTime(testEpoch.Add(time.Second))).
			Rm("/var/cache/apk", llb.WithAllowNotFound(true)),
		llb.WithCustomName("files"))
	run := files.Run(
		llb.Args([]string{"/bin/sh", "-c", "apk add curl && rm -rf /tmp/x"}),
		llb.AddEnv("B", "2"), llb.AddEnv("A", "1"),
		llb.Dir("/work"),
		llb.AddMount("/var/cache/apk", llb.Scratch(), llb.AsPersistentCacheDir("apk", llb.CacheMountLocked)),
		llb.WithCustomName("install"))
	def, err := run.Root().Marshal(context.Background(),
		llb.Platform(ocispecs.Platform{OS: "linux", Architecture: "amd64"}), llb.LocalUniqueID("test"))
	if err != nil {
		t.Fatal(err)
	}
	return def
}

// wantDump is testDef's dump. It is spelled out here, not generated, so
// that a change of the format is a visible change of this test as well as
// of every golden file that uses it.
const wantDump = `# header

#1 source (linux/amd64)
  identifier: docker-image://docker.io/library/alpine:3.20

#2 source
  identifier: local://ctx
  attr local.unique = "test"

#3 file "files"
  input 0 = #1
  input 1 = #2
  actions:
    0. on input 0: mkdir /etc/app 0755 parents @epoch
    1. mkfile /etc/app/release 0644 (20 bytes) @epoch:
       | NAME=test
       | VERSION=1
    2. mkfile /usr/bin/known 0755 = overlay/known (21 bytes, sha256 63fe5a9ffa3ef249) @epoch
    3. copy input 1:/bin/tool -> /usr/bin/tool 0755 follow-symlink @epoch
    4. symlink /usr/bin/t -> /usr/bin/tool @2024-01-01T00:00:01Z
    5. rm /var/cache/apk allow-not-found => output 0

#4 exec "install" (linux/amd64)
  input 0 = #3
  args: "/bin/sh" "-c" <script>
  script:
    apk add curl
    && rm -rf /tmp/x
  env:
    A=1
    B=2
  cwd: /work
  remove mount stubs recursively
  mounts:
    /: bind input 0, rw, => output 0
    /var/cache/apk: cache id=apk sharing=locked, rw

result = #4
`

func TestDump(t *testing.T) {
	opts := Options{
		Header:  "# header\n",
		Epoch:   testEpoch,
		Origins: map[string]string{ContentSum(knownFile): "overlay/known"},
	}
	got, err := Dump(testDef(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got != wantDump {
		t.Errorf("dump differs (- want, + got):\n%s", Diff(wantDump, got, 3, 80))
	}
	// A second marshal of the same build dumps the same.
	again, err := Dump(testDef(t), opts)
	if err != nil || again != got {
		t.Errorf("second dump differs (%v):\n%s", err, Diff(got, again, 3, 80))
	}
}

func TestParse(t *testing.T) {
	def := testDef(t)
	g, err := Parse(def)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Order) != 4 || len(g.Ops) != 4 {
		t.Fatalf("%d ops in order, %d decoded, want 4", len(g.Order), len(g.Ops))
	}
	// Inputs come before the ops that read them.
	for _, d := range g.Order {
		for _, in := range g.Ops[d].Inputs {
			if g.Num[digest.Digest(in.Digest)] >= g.Num[d] {
				t.Errorf("op #%d reads #%d, which is not before it", g.Num[d], g.Num[digest.Digest(in.Digest)])
			}
		}
	}
	top := g.Ops[digest.Digest(g.Out.Digest)]
	if top.GetExec() == nil || g.Names[digest.Digest(g.Out.Digest)] != "install" {
		t.Errorf("result is not the install exec: %v", top)
	}
	if d := g.Input(top, 0); g.Ops[d].GetFile() == nil {
		t.Errorf("Input(exec, 0) = %s, not the file op", d)
	}
	if got := g.Ref(&pb.Input{Digest: g.Out.Digest, Index: 2}); got != "#4 output 2" {
		t.Errorf("Ref = %q", got)
	}

	other, err := llb.Image("docker.io/library/busybox").Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Definitions the dump could not show faithfully are refused.
	bad := map[string]*llb.Definition{
		// An op the result does not use would not be dumped.
		"unreachable op": {Def: append([][]byte{other.Def[0]}, def.Def...)},
		"empty":          {},
		// Without its last entry, the result marker, the exec is taken
		// for the marker.
		"no result marker": {Def: def.Def[:len(def.Def)-1], Metadata: def.Metadata},
		// The file op's inputs are gone.
		"missing input": {Def: append([][]byte{}, def.Def[len(def.Def)-3:]...)},
	}
	for name, d := range bad {
		if _, err := Parse(d); err == nil {
			t.Errorf("%s: parsed", name)
		}
		if _, err := Dump(d, Options{}); err == nil {
			t.Errorf("%s: dumped", name)
		}
	}
}

func TestDiff(t *testing.T) {
	a := "1\n2\n3\n4\n5\n6\n7\n8\n9\n"
	b := "1\n2\n3\n4\nfive\n6\n7\n8\n9\n10\n"
	want := `@@ golden line 2, new line 2 @@
  2
  3
  4
- 5
+ five
  6
  7
  8
  9
+ 10
`
	if got := Diff(a, b, 3, 80); got != want {
		t.Errorf("Diff:\n%s\nwant:\n%s", got, want)
	}
	if got := Diff(a, a, 3, 80); got != "" {
		t.Errorf("Diff of equal texts: %q", got)
	}
	// Two changes far apart are two hunks; the output is cut at maxLines.
	var old, changed strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&old, "%d\n", i)
		switch i {
		case 1:
			changed.WriteString("one\n")
		case 20:
			changed.WriteString("twenty\n")
		default:
			fmt.Fprintf(&changed, "%d\n", i)
		}
	}
	wantCut := `@@ golden line 1, new line 1 @@
- 1
+ one
  2
@@ golden line 19, new line 19 @@
  19
... (diff cut; run the test with -update and use git diff for the rest)
`
	if got := Diff(old.String(), changed.String(), 1, 4); got != wantCut {
		t.Errorf("Diff with a cut:\n%s\nwant:\n%s", got, wantCut)
	}
}
