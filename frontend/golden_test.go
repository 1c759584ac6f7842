package frontend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/distribution/reference"
	"github.com/kairos-io/kairos/flavors"
	"github.com/kairos-io/kairos/internal/release"
	"github.com/kairos-io/kairos/overlay"
	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// Golden LLB tests. Only Debian is built for real on the build machines;
// every other flavor is checked here, at the LLB level, by two independent
// means:
//
//   - a readable dump of the marshalled definition of each build, compared
//     with frontend/testdata/golden/<flavor>-<arch>-<variant>-<target>.llb.txt,
//     so any change to what the frontend emits shows up as a reviewable diff
//     (regenerate with: go test ./frontend -run TestGoldenLLB -update);
//   - semantic checks of the same definition against the flavor data, which
//     hold whatever the golden files say, so a careless -update cannot bless
//     wrong output.

var updateGolden = flag.Bool("update", false, "rewrite frontend/testdata/golden/*.llb.txt from the current LLB")

const (
	goldenDir        = "testdata/golden"
	goldenVersion    = "v1.0.0"
	goldenK3sVersion = "v1.31.2+k3s1"
)

// goldenEpoch stamps every file of the golden builds (SOURCE_DATE_EPOCH).
var goldenEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// goldenCase is one build of the golden matrix.
type goldenCase struct {
	flavor   *flavors.Flavor
	arch     string
	variant  string
	target   Target
	fileName string
}

func goldenCases(cat *flavors.Catalog) []goldenCase {
	var out []goldenCase
	add := func(f *flavors.Flavor, arch, variant string, target Target) {
		out = append(out, goldenCase{f, arch, variant, target,
			fmt.Sprintf("%s-%s-%s-%s.llb.txt", f.ID(), arch, variant, target)})
	}
	for _, f := range cat.Flavors() {
		for _, arch := range []string{"amd64", "arm64"} {
			for _, target := range []Target{TargetImage, TargetISO} {
				add(f, arch, "core", target)
			}
		}
		add(f, "amd64", "standard", TargetImage)
	}
	return out
}

func TestGoldenLLB(t *testing.T) {
	cat, err := flavors.Load()
	if err != nil {
		t.Fatal(err)
	}
	cases := goldenCases(cat)
	ran := map[string]bool{}
	for _, tc := range cases {
		t.Run(strings.TrimSuffix(tc.fileName, ".llb.txt"), func(t *testing.T) {
			ran[tc.fileName] = true
			g, def := goldenBuild(t, cat, tc)
			dump, err := dumpLLB(def, tc.header(), goldenEpoch)
			if err != nil {
				t.Fatal(err)
			}
			// The same build converted and marshalled again must dump the
			// same: nothing in the LLB may depend on map order or the clock.
			_, again := goldenBuild(t, cat, tc)
			if dump2, err := dumpLLB(again, tc.header(), goldenEpoch); err != nil || dump2 != dump {
				t.Errorf("a second conversion dumps differently (%v):\n%s", err, lineDiff(dump, dump2, 3, 40))
			}
			compareGolden(t, filepath.Join(goldenDir, tc.fileName), dump)
			checkSemantics(t, cat, tc, g)
		})
	}
	// Golden files of builds that no longer exist would go stale unnoticed.
	// Only when every case ran: a -run filter must not delete the others.
	if len(ran) != len(cases) {
		return
	}
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".llb.txt") || ran[e.Name()] {
			continue
		}
		name := filepath.Join(goldenDir, e.Name())
		if *updateGolden {
			if err := os.Remove(name); err != nil {
				t.Error(err)
			}
			continue
		}
		t.Errorf("%s belongs to no build of the golden matrix; remove it with: go test ./frontend -run TestGoldenLLB -update", name)
	}
}

func (tc goldenCase) header() string {
	return fmt.Sprintf(`# LLB of flavor %s, platform linux/%s, variant %s, target %s.
# Inputs: VERSION=%s, K3S_VERSION=%s (standard only), base image
# %s, agent and k3s from local contexts, epoch %s.
# Written by TestGoldenLLB in frontend/golden_test.go; after an intended change
# regenerate with: go test ./frontend -run TestGoldenLLB -update
# Ops are listed inputs first; "#N" is op N of this file, "input I" is the
# op's I-th input.
`, tc.flavor.ID(), tc.arch, tc.variant, tc.target, goldenVersion, goldenK3sVersion,
		tc.flavor.BaseImage, goldenEpoch.Format(time.RFC3339))
}

// goldenBuild plans, converts and marshals one case as the frontend does.
func goldenBuild(t *testing.T, cat *flavors.Catalog, tc goldenCase) (*llbGraph, *llb.Definition) {
	t.Helper()
	args := map[string]string{
		ArgFlavor:        tc.flavor.Name,
		ArgFlavorRelease: tc.flavor.Release,
		ArgVersion:       goldenVersion,
		ArgVariant:       tc.variant,
	}
	if tc.variant == "standard" {
		args[ArgK3SVersion] = goldenK3sVersion
	}
	o, err := ParseOptions(string(tc.target), args)
	if err != nil {
		t.Fatal(err)
	}
	platform := ocispecs.Platform{OS: "linux", Architecture: tc.arch}
	p, err := NewPlan(cat, o, platform)
	if err != nil {
		t.Fatal(err)
	}
	epoch := goldenEpoch
	in := Inputs{
		Base:  llb.Image(tc.flavor.BaseImage),
		Agent: llb.Local("agent"),
		Epoch: &epoch,
	}
	if tc.target != TargetImage {
		// The writer always runs on amd64 here, whatever the target
		// platform, as it would on an amd64 builder.
		tools := llb.Local("tools").Platform(ocispecs.Platform{OS: "linux", Architecture: "amd64"})
		in.Tools, in.ToolsPath = &tools, ToolsFile
	}
	if tc.variant == "standard" {
		k3s := llb.Local("k3s")
		in.K3s = &k3s
	}
	cg, err := Convert(p, in)
	if err != nil {
		t.Fatal(err)
	}
	out := cg.Image
	if p.Artifacts != nil {
		out = cg.Artifacts
	}
	// BuildKit stamps local sources with an ID random per marshal (a
	// session's locals are not shared by default): fixed here.
	def, err := out.Marshal(context.Background(), llb.Platform(platform), llb.LocalUniqueID("golden"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := parseLLB(def)
	if err != nil {
		t.Fatal(err)
	}
	return g, def
}

// compareGolden checks got against the golden file, or rewrites it with -update.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v\ncreate it with: go test ./frontend -run TestGoldenLLB -update", err)
	}
	if string(want) == got {
		return
	}
	t.Errorf("the LLB differs from %s (- golden, + now):\n%s\nif the change is intended, review it and regenerate with: go test ./frontend -run TestGoldenLLB -update",
		name, lineDiff(string(want), got, 3, 80))
}

// lineDiff is a unified-style diff of two texts: hunks of changed lines with
// context lines around them, cut after maxLines output lines.
func lineDiff(a, b string, context, maxLines int) string {
	x := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	y := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	// lcs[i][j] is the length of the longest common subsequence of x[i:], y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		kind byte // ' ', '-', '+'
		text string
		a, b int // 1-based line numbers in a and b
	}
	var lines []line
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, line{' ', x[i], i + 1, j + 1})
			i++
			j++
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, line{'-', x[i], i + 1, j + 1})
			i++
		default:
			lines = append(lines, line{'+', y[j], i + 1, j + 1})
			j++
		}
	}
	show := make([]bool, len(lines))
	for k, l := range lines {
		if l.kind != ' ' {
			for c := max(0, k-context); c <= min(len(lines)-1, k+context); c++ {
				show[c] = true
			}
		}
	}
	var sb strings.Builder
	n := 0
	for k := 0; k < len(lines); k++ {
		if !show[k] {
			continue
		}
		if k == 0 || !show[k-1] {
			fmt.Fprintf(&sb, "@@ golden line %d, new line %d @@\n", lines[k].a, lines[k].b)
		}
		if n == maxLines {
			sb.WriteString("... (diff cut; run the test with -update and use git diff for the rest)\n")
			break
		}
		fmt.Fprintf(&sb, "%c %s\n", lines[k].kind, lines[k].text)
		n++
	}
	return sb.String()
}

// ---------------------------------------------------------------------------
// The LLB graph and its dump

// llbGraph is a marshalled definition decoded into its ops.
type llbGraph struct {
	ops   map[digest.Digest]*pb.Op
	names map[digest.Digest]string // llb.WithCustomName
	// order lists the ops depth first from the output, each after its
	// inputs in the op's own input order: a function of the ops' content
	// alone, so the same LLB always dumps the same way.
	order []digest.Digest
	num   map[digest.Digest]int // 1-based position in order
	out   *pb.Input             // the definition's result
}

func parseLLB(def *llb.Definition) (*llbGraph, error) {
	g := &llbGraph{ops: map[digest.Digest]*pb.Op{}, names: map[digest.Digest]string{}, num: map[digest.Digest]int{}}
	if len(def.Def) == 0 {
		return nil, fmt.Errorf("empty definition")
	}
	for i, dt := range def.Def {
		var op pb.Op
		if err := op.UnmarshalVT(dt); err != nil {
			return nil, err
		}
		if i == len(def.Def)-1 {
			// The last op only points at the result.
			if op.Op != nil || len(op.Inputs) != 1 {
				return nil, fmt.Errorf("last op of the definition is not the result marker: %v", &op)
			}
			g.out = op.Inputs[0]
			continue
		}
		d := digest.FromBytes(dt)
		g.ops[d] = &op
		if m, ok := def.Metadata[d]; ok {
			g.names[d] = m.Description["llb.customname"]
		}
	}
	var visit func(d digest.Digest) error
	visiting := map[digest.Digest]bool{}
	visit = func(d digest.Digest) error {
		if g.num[d] != 0 {
			return nil
		}
		if visiting[d] {
			return fmt.Errorf("cycle at %s", d)
		}
		visiting[d] = true
		op, ok := g.ops[d]
		if !ok {
			return fmt.Errorf("input %s is not in the definition", d)
		}
		for _, in := range op.Inputs {
			if err := visit(digest.Digest(in.Digest)); err != nil {
				return err
			}
		}
		g.order = append(g.order, d)
		g.num[d] = len(g.order)
		return nil
	}
	if err := visit(digest.Digest(g.out.Digest)); err != nil {
		return nil, err
	}
	if len(g.order) != len(g.ops) {
		return nil, fmt.Errorf("%d ops of the definition are not reachable from its result", len(g.ops)-len(g.order))
	}
	return g, nil
}

// ref names an op's input for the dump: "#3", or "#3 output 1".
func (g *llbGraph) ref(in *pb.Input) string {
	s := "#" + strconv.Itoa(g.num[digest.Digest(in.Digest)])
	if in.Index != 0 {
		s += " output " + strconv.FormatInt(in.Index, 10)
	}
	return s
}

// overlayOrigins maps the sha256 of every embedded overlay file to its path
// in the overlay, so the dump names where a file's content comes from
// instead of repeating it.
func overlayOrigins() (map[string]string, error) {
	trees := []string{"rootfs", "build", "iso"}
	for _, kind := range []string{"init", "initrd", "k3s"} {
		for _, name := range knownOverlayTrees[kind] {
			trees = append(trees, kind+"/"+name)
		}
	}
	sort.Strings(trees)
	out := map[string]string{}
	for _, tree := range trees {
		files, err := overlay.Tree(tree)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			sum := sha256Hex(f.Data)
			if _, ok := out[sum]; !ok {
				out[sum] = "overlay/" + tree + "/" + f.Path
			}
		}
	}
	return out, nil
}

// knownOverlayTrees are the per-init and per-initrd overlay directories
// (flavors.validate allows exactly these init and initrd values).
var knownOverlayTrees = map[string][]string{
	"init":   {"openrc", "systemd"},
	"initrd": {"dracut", "mkinitfs"},
	"k3s":    {"openrc", "systemd"},
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// dumper holds what the dump needs besides the definition.
type dumper struct {
	epoch   time.Time         // shown as "@epoch"
	origins map[string]string // overlay file by content sha256
}

// dumpLLB renders a definition as text, one op after the other. File
// timestamps equal to epoch are written "@epoch".
func dumpLLB(def *llb.Definition, header string, epoch time.Time) (string, error) {
	g, err := parseLLB(def)
	if err != nil {
		return "", err
	}
	origins, err := overlayOrigins()
	if err != nil {
		return "", err
	}
	dp := &dumper{epoch: epoch, origins: origins}
	var b strings.Builder
	b.WriteString(header)
	for _, d := range g.order {
		op := g.ops[d]
		b.WriteString("\n")
		if err := dp.dumpOp(&b, g, d, op); err != nil {
			return "", fmt.Errorf("op #%d: %w", g.num[d], err)
		}
	}
	fmt.Fprintf(&b, "\nresult = %s\n", g.ref(g.out))
	return b.String(), nil
}

func (dp *dumper) dumpOp(b *strings.Builder, g *llbGraph, d digest.Digest, op *pb.Op) error {
	var kind string
	switch op.Op.(type) {
	case *pb.Op_Source:
		kind = "source"
	case *pb.Op_Exec:
		kind = "exec"
	case *pb.Op_File:
		kind = "file"
	default:
		return fmt.Errorf("op type %T is not dumped: extend dumpLLB", op.Op)
	}
	fmt.Fprintf(b, "#%d %s", g.num[d], kind)
	if name := g.names[d]; name != "" {
		fmt.Fprintf(b, " %q", name)
	}
	if p := op.Platform; p != nil {
		s := p.OS + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		fmt.Fprintf(b, " (%s)", s)
	}
	b.WriteString("\n")
	for i, in := range op.Inputs {
		fmt.Fprintf(b, "  input %d = %s\n", i, g.ref(in))
	}
	if c := op.Constraints; c != nil && len(c.Filter) > 0 {
		fmt.Fprintf(b, "  constraints: %q\n", c.Filter)
	}
	switch o := op.Op.(type) {
	case *pb.Op_Source:
		dumpSource(b, o.Source)
	case *pb.Op_Exec:
		dumpExec(b, o.Exec, len(op.Inputs))
	case *pb.Op_File:
		return dp.dumpFile(b, o.File, len(op.Inputs))
	}
	return nil
}

func dumpSource(b *strings.Builder, s *pb.SourceOp) {
	fmt.Fprintf(b, "  identifier: %s\n", s.Identifier)
	for _, k := range sortedKeys(s.Attrs) {
		fmt.Fprintf(b, "  attr %s = %q\n", k, s.Attrs[k])
	}
}

func dumpExec(b *strings.Builder, e *pb.ExecOp, nInputs int) {
	m := e.Meta
	if len(m.Args) == 3 && m.Args[1] == "-c" {
		// Shell scripts are joined from fragments with " && ": one a line.
		fmt.Fprintf(b, "  args: %q %q <script>\n", m.Args[0], m.Args[1])
		b.WriteString("  script:\n")
		for i, part := range strings.Split(m.Args[2], " && ") {
			if i > 0 {
				part = "&& " + part
			}
			fmt.Fprintf(b, "    %s\n", part)
		}
	} else {
		fmt.Fprintf(b, "  args: %s\n", quoteAll(m.Args))
	}
	env := slices.Clone(m.Env)
	sort.Strings(env)
	b.WriteString("  env:\n")
	for _, kv := range env {
		fmt.Fprintf(b, "    %s\n", kv)
	}
	fmt.Fprintf(b, "  cwd: %s\n", m.Cwd)
	if m.User != "" {
		fmt.Fprintf(b, "  user: %s\n", m.User)
	}
	if m.Hostname != "" {
		fmt.Fprintf(b, "  hostname: %s\n", m.Hostname)
	}
	for _, h := range m.ExtraHosts {
		fmt.Fprintf(b, "  extra host: %s=%s\n", h.Host, h.IP)
	}
	for _, u := range m.Ulimit {
		fmt.Fprintf(b, "  ulimit: %s=%d:%d\n", u.Name, u.Soft, u.Hard)
	}
	if m.CgroupParent != "" {
		fmt.Fprintf(b, "  cgroup parent: %s\n", m.CgroupParent)
	}
	if len(m.ValidExitCodes) > 0 {
		fmt.Fprintf(b, "  valid exit codes: %v\n", m.ValidExitCodes)
	}
	if m.ProxyEnv != nil {
		fmt.Fprintf(b, "  proxy env: %v\n", m.ProxyEnv)
	}
	if m.RemoveMountStubsRecursive {
		b.WriteString("  remove mount stubs recursively\n")
	}
	if e.Network != pb.NetMode_UNSET {
		fmt.Fprintf(b, "  network: %s\n", e.Network)
	}
	if e.Security != pb.SecurityMode_SANDBOX {
		fmt.Fprintf(b, "  security: %s\n", e.Security)
	}
	for _, s := range e.Secretenv {
		fmt.Fprintf(b, "  secret env: %s from %s optional=%v\n", s.Name, s.ID, s.Optional)
	}
	for _, c := range e.CdiDevices {
		fmt.Fprintf(b, "  cdi device: %s optional=%v\n", c.Name, c.Optional)
	}
	b.WriteString("  mounts:\n")
	for _, mt := range e.Mounts {
		var parts []string
		switch mt.MountType {
		case pb.MountType_BIND:
			parts = append(parts, "bind "+inputName(mt.Input, nInputs))
		case pb.MountType_CACHE:
			c := mt.CacheOpt
			if c == nil {
				c = &pb.CacheOpt{}
			}
			parts = append(parts, fmt.Sprintf("cache id=%s sharing=%s", c.ID, strings.ToLower(c.Sharing.String())))
			if mt.Input != -1 {
				parts = append(parts, "on "+inputName(mt.Input, nInputs))
			}
		case pb.MountType_TMPFS:
			s := "tmpfs"
			if mt.TmpfsOpt != nil && mt.TmpfsOpt.Size != 0 {
				s += fmt.Sprintf(" size=%d", mt.TmpfsOpt.Size)
			}
			parts = append(parts, s)
		case pb.MountType_SECRET:
			parts = append(parts, fmt.Sprintf("secret %v", mt.SecretOpt))
		case pb.MountType_SSH:
			parts = append(parts, fmt.Sprintf("ssh %v", mt.SSHOpt))
		default:
			parts = append(parts, mt.MountType.String())
		}
		if mt.Selector != "" {
			parts = append(parts, "selector "+mt.Selector)
		}
		if mt.Readonly {
			parts = append(parts, "readonly")
		} else {
			parts = append(parts, "rw")
		}
		if mt.Output >= 0 {
			parts = append(parts, "=> output "+strconv.FormatInt(mt.Output, 10))
		}
		if mt.ContentCache != pb.MountContentCache_DEFAULT {
			parts = append(parts, "content cache "+strings.ToLower(mt.ContentCache.String()))
		}
		if mt.ResultID != "" {
			parts = append(parts, "result "+mt.ResultID)
		}
		fmt.Fprintf(b, "    %s: %s\n", mt.Dest, strings.Join(parts, ", "))
	}
}

// inputName names an exec mount's input.
func inputName(i int64, nInputs int) string {
	switch {
	case i == -1:
		return "scratch"
	case i < int64(nInputs):
		return "input " + strconv.FormatInt(i, 10)
	default:
		return fmt.Sprintf("bad input %d", i)
	}
}

func (dp *dumper) dumpFile(b *strings.Builder, f *pb.FileOp, nInputs int) error {
	// An action's input and secondary input index the op's inputs, then
	// the results of its earlier actions.
	on := func(i int64) string {
		switch {
		case i == -1:
			return "scratch"
		case i < int64(nInputs):
			return "input " + strconv.FormatInt(i, 10)
		default:
			return "action " + strconv.FormatInt(i-int64(nInputs), 10)
		}
	}
	b.WriteString("  actions:\n")
	for k, a := range f.Actions {
		line := fmt.Sprintf("    %d.", k)
		// Most actions apply to the previous one's result: only the others
		// say what they apply to.
		if k == 0 || a.Input != int64(nInputs+k-1) {
			line += " on " + on(a.Input) + ":"
		}
		var body []string
		switch x := a.Action.(type) {
		case *pb.FileAction_Mkdir:
			m := x.Mkdir
			line += fmt.Sprintf(" mkdir %s %04o", m.Path, m.Mode)
			if m.MakeParents {
				line += " parents"
			}
			line += owner(m.Owner) + dp.stamp(m.Timestamp)
		case *pb.FileAction_Mkfile:
			m := x.Mkfile
			line += fmt.Sprintf(" mkfile %s %04o", m.Path, m.Mode) + owner(m.Owner)
			sum := sha256Hex(m.Data)
			switch origin, ok := dp.origins[sum]; {
			case ok:
				// Embedded overlay files: named, not repeated.
				line += fmt.Sprintf(" = %s (%d bytes, sha256 %s)", origin, len(m.Data), sum[:16])
			case isSmallText(m.Data):
				// Generated files (kairos-release...): the content itself.
				line += fmt.Sprintf(" (%d bytes)", len(m.Data))
				for _, l := range strings.Split(strings.TrimSuffix(string(m.Data), "\n"), "\n") {
					body = append(body, "       | "+l)
				}
				if !strings.HasSuffix(string(m.Data), "\n") {
					body = append(body, "       (no final newline)")
				}
			default:
				line += fmt.Sprintf(" (%d bytes, sha256 %s)", len(m.Data), sum[:16])
			}
			line += dp.stamp(m.Timestamp)
		case *pb.FileAction_Copy:
			c := x.Copy
			line += fmt.Sprintf(" copy %s:%s -> %s", on(a.SecondaryInput), c.Src, c.Dest)
			if c.Mode != -1 {
				line += fmt.Sprintf(" %04o", c.Mode)
			}
			if c.ModeStr != "" {
				line += " mode " + c.ModeStr
			}
			for _, flag := range []struct {
				on   bool
				name string
			}{
				{c.FollowSymlink, "follow-symlink"},
				{c.DirCopyContents, "dir-contents"},
				{c.AttemptUnpackDockerCompatibility, "unpack"},
				{c.CreateDestPath, "create-dest-path"},
				{c.AllowWildcard, "allow-wildcard"},
				{c.AllowEmptyWildcard, "allow-empty-wildcard"},
				{c.AlwaysReplaceExistingDestPaths, "replace-existing"},
			} {
				if flag.on {
					line += " " + flag.name
				}
			}
			if len(c.IncludePatterns) > 0 {
				line += fmt.Sprintf(" include %q", c.IncludePatterns)
			}
			if len(c.ExcludePatterns) > 0 {
				line += fmt.Sprintf(" exclude %q", c.ExcludePatterns)
			}
			if len(c.RequiredPaths) > 0 {
				line += fmt.Sprintf(" required %q", c.RequiredPaths)
			}
			line += owner(c.Owner) + dp.stamp(c.Timestamp)
		case *pb.FileAction_Rm:
			r := x.Rm
			line += " rm " + r.Path
			if r.AllowNotFound {
				line += " allow-not-found"
			}
			if r.AllowWildcard {
				line += " allow-wildcard"
			}
		case *pb.FileAction_Symlink:
			s := x.Symlink
			line += fmt.Sprintf(" symlink %s -> %s", s.Newpath, s.Oldpath) + owner(s.Owner) + dp.stamp(s.Timestamp)
		default:
			return fmt.Errorf("file action %T is not dumped: extend dumpFile", a.Action)
		}
		if a.Output >= 0 {
			line += " => output " + strconv.FormatInt(a.Output, 10)
		}
		if len(body) > 0 {
			line += ":"
		}
		b.WriteString(line + "\n")
		for _, l := range body {
			b.WriteString(l + "\n")
		}
	}
	return nil
}

// isSmallText says whether file data is shown as it is: short, printable text.
func isSmallText(data []byte) bool {
	if len(data) > 2048 || !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if r < ' ' && r != '\n' && r != '\t' {
			return false
		}
	}
	return true
}

func owner(o *pb.ChownOpt) string {
	if o == nil {
		return ""
	}
	return fmt.Sprintf(" owner=%v:%v", o.User, o.Group)
}

// stamp renders a file action's timestamp: "@epoch" for the build's epoch
// (the header gives it), so that lines stay short.
func (dp *dumper) stamp(ns int64) string {
	switch {
	case ns == 0:
		return ""
	case ns == dp.epoch.UnixNano():
		return " @epoch"
	}
	return " @" + time.Unix(0, ns).UTC().Format(time.RFC3339Nano)
}

func quoteAll(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = strconv.Quote(w)
	}
	return strings.Join(q, " ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// ---------------------------------------------------------------------------
// Semantic checks

// Expected per-architecture boot values, written out here rather than taken
// from bootPlatforms so that a wrong table entry fails.
var goldenBoot = map[string]struct{ grubPlatform, efiName, bios string }{
	"amd64": {"x86_64-efi", "BOOTX64.EFI", "yes"},
	"arm64": {"arm64-efi", "BOOTAA64.EFI", "no"},
}

// overlayMarkers are files that must be in the image for each init system
// and initrd tool, with their modes: a check that does not depend on
// overlay.Tree listing the right files.
var overlayMarkers = map[string]map[string]fs.FileMode{
	"init/systemd": {
		"/usr/lib/systemd/system/cos-setup-boot.service":    0o644,
		"/usr/lib/systemd/system/kairos-ssh-keygen.service": 0o644,
	},
	"init/openrc": {
		"/etc/init.d/cos-setup-boot":    0o755,
		"/etc/init.d/kairos-ssh-keygen": 0o755,
	},
	"initrd/dracut": {
		"/etc/dracut.conf.d/10-kairos.conf":                  0o644,
		"/usr/lib/dracut/modules.d/90kairos/module-setup.sh": 0o755,
		"/usr/lib/dracut/modules.d/90kairos/kairos-mount.sh": 0o755,
	},
	"initrd/mkinitfs": {
		"/etc/mkinitfs/mkinitfs.conf":           0o644,
		"/etc/mkinitfs/features.d/kairos.files": 0o644,
		"/usr/lib/kairos/mkinitfs/init":         0o755,
	},
	"k3s/systemd": {
		"/usr/lib/systemd/system/k3s.service":       0o644,
		"/usr/lib/systemd/system/k3s-agent.service": 0o644,
	},
	"k3s/openrc": {
		"/etc/init.d/k3s":       0o755,
		"/etc/init.d/k3s-agent": 0o755,
	},
}

// imageFiles is what the image chain writes: files by path, copies by
// destination (with the op that made them).
type imageFiles struct {
	mkfiles map[string]*pb.FileActionMkFile
	copies  map[string]copyAction
}

type copyAction struct {
	copy *pb.FileActionCopy
	from digest.Digest // the op the copy reads from ("" for scratch or an earlier action)
}

func checkSemantics(t *testing.T, cat *flavors.Catalog, tc goldenCase, g *llbGraph) {
	f := tc.flavor
	pm := cat.PackageManager(f)
	boot := goldenBoot[tc.arch]
	pkgs, err := f.PackagesFor(tc.arch)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pkgs, f.Kernel[tc.arch]) || f.Kernel[tc.arch] == "" {
		t.Errorf("PackagesFor(%s) = %v lacks the kernel %q", tc.arch, pkgs, f.Kernel[tc.arch])
	}

	// Execs and images run or pull for the target platform; file ops and
	// local sources are platform-independent.
	for _, d := range g.order {
		op := g.ops[d]
		pl := op.Platform
		needs := op.GetExec() != nil || strings.HasPrefix(op.GetSource().GetIdentifier(), "docker-image://")
		if tc.target != TargetImage && (d == digest.Digest(g.out.Digest) || op.GetSource().GetIdentifier() == "local://tools") {
			continue // the artifact writer runs on the builder; checked below
		}
		if (needs || pl != nil) && (pl == nil || pl.OS != "linux" || pl.Architecture != tc.arch) {
			t.Errorf("op #%d (%s) has platform %v, want linux/%s", g.num[d], g.names[d], pl, tc.arch)
		}
	}

	// The image is the finalize step's root: the result of the image target,
	// the read-only /rootfs of the artifact step.
	var imageTop digest.Digest
	switch tc.target {
	case TargetImage:
		if g.out.Index != 0 {
			t.Errorf("image result is output %d of its op", g.out.Index)
		}
		imageTop = digest.Digest(g.out.Digest)
	case TargetISO:
		imageTop = checkArtifactStep(t, tc, pm, g)
		if imageTop == "" {
			return
		}
	}

	chain := g.rootChain(imageTop)
	top := g.ops[chain[0]]
	finalize := top.GetExec()
	if finalize == nil || !slices.Contains(finalize.Meta.Args, scriptsMount+"/build/finalize.sh") {
		t.Fatalf("the image is not made by the finalize step: top op #%d %q", g.num[chain[0]], g.names[chain[0]])
	}
	bottom := g.ops[chain[len(chain)-1]].GetSource()
	wantBase := "docker-image://" + f.BaseImage
	if named, err := reference.ParseNormalizedNamed(f.BaseImage); err == nil {
		wantBase = "docker-image://" + reference.TagNameOnly(named).String()
	} else {
		t.Errorf("base_image %q: %v", f.BaseImage, err)
	}
	if bottom == nil || bottom.Identifier != wantBase {
		t.Errorf("the image chain starts from %v, want %s", bottom, wantBase)
	}

	// Package installation: the first step on the base, once.
	var installs []digest.Digest
	for _, d := range chain {
		if s, ok := shellScript(g.ops[d].GetExec()); ok && strings.Contains(s, pm.Install+" ") {
			installs = append(installs, d)
		}
	}
	if len(installs) != 1 {
		t.Fatalf("image chain has %d steps running %q, want 1", len(installs), pm.Install)
	}
	if installs[0] != chain[len(chain)-2] {
		t.Errorf("package installation is not the first step on the base image (slow steps first keep the cache)")
	}
	checkInstall(t, "image install", f, pm, tc.arch, g.ops[installs[0]].GetExec(), f.PreInstall, pkgs)

	// Finalize: the initrd and boot assets, from the flavor's data.
	wantEnv := map[string]string{
		"KAIROS_INITRD":     f.Initrd,
		"KAIROS_INIT":       f.Init,
		"GRUB_MKIMAGE":      f.Grub.Mkimage,
		"GRUB_LIB":          f.Grub.Lib,
		"GRUB_EFI_PLATFORM": boot.grubPlatform,
		"GRUB_EFI_NAME":     boot.efiName,
		"KAIROS_BIOS":       boot.bios,
	}
	checkEnv(t, "finalize", finalize.Meta.Env, wantEnv)
	if want := []string{"/bin/sh", scriptsMount + "/build/finalize.sh"}; !slices.Equal(finalize.Meta.Args, want) {
		t.Errorf("finalize args %q, want %q", finalize.Meta.Args, want)
	}
	g.checkScriptsMount(t, "finalize", top, "build/finalize.sh")

	files := g.imageFiles(chain)

	// Overlay trees: the flavor's init and initrd (and k3s services for the
	// standard variant) are in, the others are not.
	want := []string{"rootfs", "init/" + f.Init, "initrd/" + f.Initrd}
	if tc.variant == "standard" {
		want = append(want, "k3s/"+f.Init)
	}
	wantPaths := map[string]bool{}
	for _, tree := range want {
		ofs, err := overlay.Tree(tree)
		if err != nil {
			t.Fatalf("overlay tree %s: %v", tree, err)
		}
		if len(ofs) == 0 {
			t.Errorf("overlay tree %s is empty", tree)
		}
		for _, of := range ofs {
			p := "/" + of.Path
			wantPaths[p] = true
			mk, ok := files.mkfiles[p]
			switch {
			case !ok:
				t.Errorf("%s (overlay %s) is not added to the image", p, tree)
			case fs.FileMode(mk.Mode) != of.Mode || !bytes.Equal(mk.Data, of.Data):
				t.Errorf("%s: mode %o and %d bytes, want overlay %s's mode %o and %d bytes", p, mk.Mode, len(mk.Data), tree, of.Mode, len(of.Data))
			}
		}
		markers, ok := overlayMarkers[tree]
		if !ok && tree != "rootfs" {
			t.Errorf("no marker files listed for overlay tree %s: add them to overlayMarkers", tree)
		}
		for p, mode := range markers {
			if mk, ok := files.mkfiles[p]; !ok || fs.FileMode(mk.Mode) != mode {
				t.Errorf("%s (%s) missing or not mode %o", p, tree, mode)
			}
		}
	}
	// Every init and initrd tree: the known ones and any a flavor names.
	others := map[string]bool{}
	for kind, names := range knownOverlayTrees {
		for _, name := range names {
			others[kind+"/"+name] = true
		}
	}
	for _, o := range cat.Flavors() {
		others["init/"+o.Init], others["initrd/"+o.Initrd], others["k3s/"+o.Init] = true, true, true
	}
	for _, tree := range sortedKeys(others) {
		if slices.Contains(want, tree) {
			continue
		}
		ofs, err := overlay.Tree(tree)
		if err != nil {
			t.Fatalf("overlay tree %s: %v", tree, err)
		}
		for _, of := range ofs {
			if p := "/" + of.Path; !wantPaths[p] && files.mkfiles[p] != nil {
				t.Errorf("%s of overlay %s is in a %s/%s %s image", p, tree, f.Init, f.Initrd, tc.variant)
			}
		}
		for p := range overlayMarkers[tree] {
			if !wantPaths[p] && files.mkfiles[p] != nil {
				t.Errorf("%s (%s) is in a %s/%s %s image", p, tree, f.Init, f.Initrd, tc.variant)
			}
		}
	}
	for p := range files.mkfiles {
		if strings.HasPrefix(p, "/build/") || strings.HasPrefix(p, "/iso/") || strings.HasPrefix(p, scriptsMount) {
			t.Errorf("build script %s is written into the image", p)
		}
	}

	// /etc/kairos-release.
	rel, ok := files.mkfiles[release.Path]
	if !ok {
		t.Fatalf("%s is not written", release.Path)
	}
	if rel.Mode != 0o644 {
		t.Errorf("%s mode %o", release.Path, rel.Mode)
	}
	kv, err := release.Parse(rel.Data)
	if err != nil {
		t.Fatal(err)
	}
	wantRel := map[string]string{
		"KAIROS_FLAVOR":                  f.Name,
		"KAIROS_FLAVOR_RELEASE":          f.Release,
		"KAIROS_FAMILY":                  f.Family,
		"KAIROS_ARCH":                    tc.arch,
		"KAIROS_TARGETARCH":              tc.arch,
		"KAIROS_VERSION":                 goldenVersion,
		"KAIROS_VARIANT":                 tc.variant,
		"KAIROS_MODEL":                   "generic",
		"KAIROS_SOFTWARE_VERSION":        "",
		"KAIROS_SOFTWARE_VERSION_PREFIX": "",
	}
	if tc.variant == "standard" {
		wantRel["KAIROS_SOFTWARE_VERSION"] = goldenK3sVersion
		wantRel["KAIROS_SOFTWARE_VERSION_PREFIX"] = "k3s"
	}
	for k, v := range wantRel {
		if got, ok := kv[k]; !ok || got != v {
			t.Errorf("%s: %s=%q (present %v), want %q", release.Path, k, got, ok, v)
		}
	}

	// Binaries from the local contexts.
	g.checkCopy(t, files, agentPath, "local://agent", "/"+agentFile)
	if tc.variant == "standard" {
		g.checkCopy(t, files, k3sPath, "local://k3s", "/"+k3sFile)
	} else if _, ok := files.copies[k3sPath]; ok {
		t.Errorf("core variant copies %s", k3sPath)
	}
}

// checkArtifactStep checks the iso target's artifact step and returns the
// image it reads.
func checkArtifactStep(t *testing.T, tc goldenCase, pm flavors.PackageManager, g *llbGraph) digest.Digest {
	d := digest.Digest(g.out.Digest)
	op := g.ops[d]
	run := op.GetExec()
	if run == nil {
		t.Errorf("iso result is not an exec: op #%d", g.num[d])
		return ""
	}
	out := mountAt(run, "/out")
	if out == nil || out.Output != g.out.Index || out.Input != -1 || out.Readonly {
		t.Errorf("iso result is not the artifact step's writable scratch /out mount: %v, result output %d", out, g.out.Index)
	}
	name := fmt.Sprintf("kairos-%s-%s-%s-%s-generic-%s", tc.flavor.Name, tc.flavor.Release, tc.variant, tc.arch, goldenVersion)
	want := []string{"/" + ToolsFile, "artifacts", "iso", "--source", "dir:/rootfs", "--output", "/out", "--name", name, "--compression", "gzip"}
	if !slices.Equal(run.Meta.Args, want) {
		t.Errorf("artifact step args %q, want %q", run.Meta.Args, want)
	}
	checkEnv(t, "artifact step", run.Meta.Env, map[string]string{
		"SOURCE_DATE_EPOCH": fmt.Sprint(goldenEpoch.Unix()),
	})
	// The writer runs on the builder (amd64 here) for every target.
	if pl := op.Platform; pl == nil || pl.Architecture != "amd64" {
		t.Errorf("artifact step platform %v, want the builder's linux/amd64", pl)
	}

	rootfs := mountAt(run, "/rootfs")
	if rootfs == nil || !rootfs.Readonly || rootfs.Input < 0 {
		t.Errorf("artifact step does not mount the image read-only at /rootfs: %v", rootfs)
		return ""
	}
	image := g.input(op, rootfs.Input)

	// The writer is the tools context itself: nothing is installed.
	root := mountAt(run, "/")
	if root == nil || root.Input < 0 {
		t.Errorf("artifact step has no root: %v", root)
		return image
	}
	if id := g.ops[g.input(op, root.Input)].GetSource().GetIdentifier(); id != "local://tools" {
		t.Errorf("artifact step's root is %q, want the tools context", id)
	}
	return image
}

// checkInstall checks one package installation step against the flavor's
// package manager: the pre-install commands, then the install command with
// exactly pkgs, then the clean command; the manager's environment; its cache
// directories as locked cache mounts, per flavor and architecture.
func checkInstall(t *testing.T, what string, f *flavors.Flavor, pm flavors.PackageManager, arch string, e *pb.ExecOp, pre, pkgs []string) {
	t.Helper()
	script, ok := shellScript(e)
	if !ok {
		t.Errorf("%s is not a shell script: %q", what, e.Meta.Args)
		return
	}
	prefix := pm.Install + " "
	if len(pre) > 0 {
		prefix = strings.Join(pre, " && ") + " && " + prefix
	}
	if !strings.HasPrefix(script, prefix) {
		t.Errorf("%s does not start with %q:\n%s", what, prefix, script)
		return
	}
	rest := strings.TrimPrefix(script, prefix)
	words, after, _ := strings.Cut(rest, " && ")
	if got := strings.Fields(words); !slices.Equal(got, pkgs) {
		t.Errorf("%s installs %q, want %q", what, got, pkgs)
	}
	if want := strings.TrimPrefix(pm.Clean+" && "+identityCleanup, " && "); pm.Clean != "" && after != want {
		t.Errorf("%s ends with %q, want the clean command and the identity cleanup %q", what, after, want)
	}
	want := map[string]string{"PATH": defaultPATH}
	for k, v := range pm.Env {
		want[k] = v
	}
	checkEnv(t, what, e.Meta.Env, want)
	var caches []string
	ids := map[string]bool{}
	for _, m := range e.Mounts {
		if m.MountType != pb.MountType_CACHE {
			continue
		}
		caches = append(caches, m.Dest)
		switch {
		case m.CacheOpt == nil:
			t.Errorf("%s: cache mount %s has no cache options", what, m.Dest)
		case m.CacheOpt.Sharing != pb.CacheSharingOpt_LOCKED:
			t.Errorf("%s: cache mount %s sharing %s, want locked", what, m.Dest, m.CacheOpt.Sharing)
		case !strings.Contains(m.CacheOpt.ID, f.ID()+"-"+arch) || ids[m.CacheOpt.ID]:
			t.Errorf("%s: cache mount %s id %q is not unique per flavor and architecture", what, m.Dest, m.CacheOpt.ID)
		}
		if m.CacheOpt != nil {
			ids[m.CacheOpt.ID] = true
		}
	}
	if !slices.Equal(caches, pm.CacheDirs) {
		t.Errorf("%s cache mounts %q, want the package manager's %q", what, caches, pm.CacheDirs)
	}
	if r := mountAt(e, "/"); r == nil || r.Readonly {
		t.Errorf("%s: root not mounted writable", what)
	}
}

// checkEnv checks that env (KEY=value entries) holds each of want exactly once.
func checkEnv(t *testing.T, what string, env []string, want map[string]string) {
	t.Helper()
	for _, k := range sortedKeys(want) {
		var got []string
		for _, kv := range env {
			if name, v, _ := strings.Cut(kv, "="); name == k {
				got = append(got, v)
			}
		}
		if len(got) != 1 || got[0] != want[k] {
			t.Errorf("%s: %s=%q, want %q", what, k, got, want[k])
		}
	}
}

// checkScriptsMount checks that op mounts, read-only at scriptsMount, a
// state holding exactly the given overlay files.
func (g *llbGraph) checkScriptsMount(t *testing.T, what string, op *pb.Op, paths ...string) {
	t.Helper()
	m := mountAt(op.GetExec(), scriptsMount)
	if m == nil || !m.Readonly || m.Input < 0 {
		t.Errorf("%s does not mount its scripts read-only at %s: %v", what, scriptsMount, m)
		return
	}
	fo := g.ops[g.input(op, m.Input)].GetFile()
	if fo == nil {
		t.Errorf("%s scripts are not a file op", what)
		return
	}
	got := map[string]*pb.FileActionMkFile{}
	for _, a := range fo.Actions {
		if mk := a.GetMkfile(); mk != nil {
			got[strings.TrimPrefix(mk.Path, "/")] = mk
		}
	}
	for _, p := range paths {
		top, rel, _ := strings.Cut(p, "/")
		ofs, err := overlay.Tree(top)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(ofs, func(f overlay.File) bool { return f.Path == rel })
		if i < 0 {
			t.Fatalf("overlay has no %s", p)
		}
		mk := got[p]
		if mk == nil || !bytes.Equal(mk.Data, ofs[i].Data) || fs.FileMode(mk.Mode) != ofs[i].Mode {
			t.Errorf("%s scripts lack overlay %s (mode %o)", what, p, ofs[i].Mode)
		}
	}
}

// checkCopy checks a copy into the image from a local context.
func (g *llbGraph) checkCopy(t *testing.T, files imageFiles, dest, source, src string) {
	t.Helper()
	c, ok := files.copies[dest]
	if !ok {
		t.Errorf("%s is not copied into the image", dest)
		return
	}
	if c.copy.Src != src || c.copy.Mode != 0o755 {
		t.Errorf("copy to %s: src %s mode %o, want %s 0755", dest, c.copy.Src, c.copy.Mode, src)
	}
	if s := g.ops[c.from].GetSource(); s == nil || s.Identifier != source {
		t.Errorf("%s is copied from %v, want %s", dest, s, source)
	}
}

// rootChain follows an image down to its base: each exec's root mount,
// each file op's first action's input. The top op comes first.
func (g *llbGraph) rootChain(top digest.Digest) []digest.Digest {
	var chain []digest.Digest
	for d := top; d != ""; {
		chain = append(chain, d)
		op := g.ops[d]
		next := int64(-1)
		switch o := op.Op.(type) {
		case *pb.Op_Exec:
			if m := mountAt(o.Exec, "/"); m != nil {
				next = m.Input
			}
		case *pb.Op_File:
			if len(o.File.Actions) > 0 {
				next = o.File.Actions[0].Input
			}
		}
		d = ""
		if next >= 0 && next < int64(len(op.Inputs)) {
			d = g.input(op, next)
		}
	}
	return chain
}

// imageFiles collects the files the file ops of chain write and copy.
func (g *llbGraph) imageFiles(chain []digest.Digest) imageFiles {
	out := imageFiles{mkfiles: map[string]*pb.FileActionMkFile{}, copies: map[string]copyAction{}}
	// Bottom up, so that later writes win as in the image.
	for _, d := range slices.Backward(chain) {
		op := g.ops[d]
		fo := op.GetFile()
		if fo == nil {
			continue
		}
		for _, a := range fo.Actions {
			if mk := a.GetMkfile(); mk != nil {
				out.mkfiles[mk.Path] = mk
			}
			if cp := a.GetCopy(); cp != nil {
				c := copyAction{copy: cp}
				if a.SecondaryInput >= 0 && a.SecondaryInput < int64(len(op.Inputs)) {
					c.from = g.input(op, a.SecondaryInput)
				}
				out.copies[cp.Dest] = c
			}
		}
	}
	return out
}

func (g *llbGraph) input(op *pb.Op, i int64) digest.Digest {
	return digest.Digest(op.Inputs[i].Digest)
}

func mountAt(e *pb.ExecOp, dest string) *pb.Mount {
	if e == nil {
		return nil
	}
	for _, m := range e.Mounts {
		if m.Dest == dest {
			return m
		}
	}
	return nil
}

// shellScript returns the script of a `/bin/sh -c <script>` exec.
func shellScript(e *pb.ExecOp) (string, bool) {
	if e == nil || len(e.Meta.Args) != 3 || e.Meta.Args[0] != "/bin/sh" || e.Meta.Args[1] != "-c" {
		return "", false
	}
	return e.Meta.Args[2], true
}

func TestLineDiff(t *testing.T) {
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
	if got := lineDiff(a, b, 3, 80); got != want {
		t.Errorf("lineDiff:\n%s\nwant:\n%s", got, want)
	}
}
