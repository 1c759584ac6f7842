// Package llbdump renders marshalled BuildKit LLB definitions as stable,
// reviewable text, for golden-file tests: the same LLB always gives the
// same text (ops in an order that depends on their content alone, map
// entries sorted), so a stored dump only changes when the LLB does, and
// the change reads as a diff (see Diff).
package llbdump

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// Options is what a dump needs besides the definition.
type Options struct {
	// Header is written first, as it is (end it with a newline).
	Header string
	// File timestamps equal to Epoch are written "@epoch", so that lines
	// stay short; the header should say what the epoch is.
	Epoch time.Time
	// Origins names where a file's content comes from, by ContentSum of
	// the content: a mkfile with known content is written as that name,
	// its size and a short hash instead of the content.
	Origins map[string]string
}

// ContentSum is the key of Options.Origins: the lowercase hex sha256 of
// a file's content.
func ContentSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Dump renders a definition as text: the header, then one op after the
// other, inputs first, then the result.
func Dump(def *llb.Definition, o Options) (string, error) {
	g, err := Parse(def)
	if err != nil {
		return "", err
	}
	return g.Dump(o)
}

// Dump renders the parsed definition as the package-level Dump does.
func (g *Graph) Dump(o Options) (string, error) {
	dp := &dumper{epoch: o.Epoch, origins: o.Origins}
	var b strings.Builder
	b.WriteString(o.Header)
	for _, d := range g.Order {
		op := g.Ops[d]
		b.WriteString("\n")
		if err := dp.dumpOp(&b, g, d, op); err != nil {
			return "", fmt.Errorf("op #%d: %w", g.Num[d], err)
		}
	}
	fmt.Fprintf(&b, "\nresult = %s\n", g.Ref(g.Out))
	return b.String(), nil
}

// dumper holds the options while one definition is written.
type dumper struct {
	epoch   time.Time         // shown as "@epoch"
	origins map[string]string // name by ContentSum
}

func (dp *dumper) dumpOp(b *strings.Builder, g *Graph, d digest.Digest, op *pb.Op) error {
	var kind string
	switch op.Op.(type) {
	case *pb.Op_Source:
		kind = "source"
	case *pb.Op_Exec:
		kind = "exec"
	case *pb.Op_File:
		kind = "file"
	default:
		return fmt.Errorf("op type %T is not dumped: extend llbdump", op.Op)
	}
	fmt.Fprintf(b, "#%d %s", g.Num[d], kind)
	if name := g.Names[d]; name != "" {
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
		fmt.Fprintf(b, "  input %d = %s\n", i, g.Ref(in))
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
			sum := ContentSum(m.Data)
			switch origin, ok := dp.origins[sum]; {
			case ok:
				// Files of known origin (embedded overlays...): named,
				// not repeated.
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
			return fmt.Errorf("file action %T is not dumped: extend llbdump", a.Action)
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
