package frontend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/gateway/client"
	"github.com/moby/buildkit/solver/errdefs"
	"github.com/moby/buildkit/solver/pb"
	"github.com/moby/buildkit/util/grpcerrors"
)

// fakeGateway is the part of the BuildKit gateway that Build uses before it
// solves any image: build options, and the solve that loads the spec file.
// Methods it does not override panic through the nil embedded interface, so
// a test that reaches further than expected fails loudly.
type fakeGateway struct {
	client.Client
	opts   map[string]string
	files  map[string][]byte // what every solved reference holds
	solved []*pb.Definition
}

func (g *fakeGateway) BuildOpts() client.BuildOpts {
	return client.BuildOpts{Opts: g.opts, LLBCaps: pb.Caps.CapSet(pb.Caps.All())}
}

func (g *fakeGateway) Solve(_ context.Context, req client.SolveRequest) (*client.Result, error) {
	g.solved = append(g.solved, req.Definition)
	res := client.NewResult()
	res.SetRef(&fakeRef{files: g.files})
	return res, nil
}

type fakeRef struct {
	client.Reference
	files map[string][]byte
}

func (r *fakeRef) ReadFile(_ context.Context, req client.ReadRequest) ([]byte, error) {
	if data, ok := r.files[req.Filename]; ok {
		return data, nil
	}
	return nil, fmt.Errorf("%s: no such file in the fake reference", req.Filename)
}

// overTheWire encodes err as the gateway client returns it to buildkitd
// (grpcclient's Return) and decodes it as buildctl and buildx receive it.
func overTheWire(t *testing.T, err error) error {
	t.Helper()
	return grpcerrors.FromGRPC(grpcerrors.ToGRPC(context.Background(), err))
}

// TestSpecErrorsCarryTheSourceLocation runs Build as a gateway frontend on
// bad specs: the error a BuildKit client receives must carry the spec file
// and the offending line, which buildctl and buildx print under the error
// with Source.Print; the message itself stays what kairos build prints.
func TestSpecErrorsCarryTheSourceLocation(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		args       map[string]string
		prefix     string // of the message
		line, col  int32  // of the range; 0: no source at all
		printed    string // in Source.Print's output
	}{
		{"parse error", "# syntax=x\nbase: debian:bookworm\nvariant: huge\n", nil,
			"kairos.yaml:3:10: variant: ", 3, 10, "   3 | >>> variant: huge\n"},
		{"value checked after parsing", "# syntax=x\nflavor: gentoo\nversion: v1.0.0\n", nil,
			"kairos.yaml:2:9: flavor: ", 2, 9, "   2 | >>> flavor: gentoo\n"},
		{"build arg from the spec", "flavor: debian\nvariant: core\nkubernetes:\n  version: v1.31.2+k3s1\n", nil,
			"kairos.yaml:4:12: kubernetes.version: ", 4, 12, "   4 | >>>   version: v1.31.2+k3s1\n"},
		// yaml.v3 itself places this error at the top-level mapping.
		{"YAML syntax, line only", "# syntax=x\nflavor: debian\nkubernetes:\n  version: v1.31.2+k3s1\n version: v1.30.0+k3s1\n", nil,
			"kairos.yaml:5: invalid YAML: did not find expected key", 5, 0, "   5 | >>>  version: v1.30.0+k3s1\n"},
		// The user passed the bad value: the error names the build arg and
		// no line of the spec is to blame.
		{"bad build arg", "flavor: debian\nversion: v1.0.0\n", map[string]string{ArgVersion: "v/1"},
			`build arg VERSION="v/1": `, 0, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGateway{
				opts:  map[string]string{keyFilename: "kairos.yaml"},
				files: map[string][]byte{"kairos.yaml": []byte(tc.spec)},
			}
			for k, v := range tc.args {
				g.opts["build-arg:"+k] = v
			}
			_, err := Build(context.Background(), g)
			if err == nil {
				t.Fatal("Build succeeded on a bad spec")
			}
			if !strings.HasPrefix(err.Error(), tc.prefix) {
				t.Errorf("error %q, want prefix %q", err, tc.prefix)
			}
			got := overTheWire(t, err)
			if got.Error() != err.Error() {
				t.Errorf("message changed on the wire: %q, was %q", got, err)
			}
			srcs := errdefs.Sources(got)
			if tc.line == 0 {
				if len(srcs) != 0 {
					t.Errorf("error %q carries sources %v, want none", err, srcs)
				}
				return
			}
			if len(srcs) != 1 {
				t.Fatalf("error %q carries %d sources, want 1", got, len(srcs))
			}
			src := srcs[0]
			if src.Info.Filename != "kairos.yaml" || string(src.Info.Data) != tc.spec || src.Info.Language != specLanguage {
				t.Errorf("source info: file %q, language %q, data %q", src.Info.Filename, src.Info.Language, src.Info.Data)
			}
			// The definition is the one Build solved to load the spec.
			if len(g.solved) == 0 || !src.Info.Definition.EqualVT(g.solved[0]) {
				t.Errorf("source definition is not the spec's load step")
			}
			want := &pb.Range{Start: &pb.Position{Line: tc.line, Character: tc.col}, End: &pb.Position{Line: tc.line, Character: tc.col}}
			if len(src.Ranges) != 1 || !src.Ranges[0].EqualVT(want) {
				t.Errorf("ranges %v, want [%v]", src.Ranges, want)
			}
			// What buildctl's and buildx's error handlers print.
			var out bytes.Buffer
			if err := src.Print(&out); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), tc.printed) {
				t.Errorf("printed source lacks %q:\n%s", tc.printed, out.String())
			}
			t.Logf("a client prints:\n%serror: %v", out.String(), got)
		})
	}
}

func TestWithSpecSourceOnlyForLinesOfTheSpec(t *testing.T) {
	data := []byte("flavor: debian\n")
	sm := llb.NewSourceMap(nil, "kairos.yaml", specLanguage, data)
	cause := errors.New("cause")
	for _, tc := range []struct {
		name string
		err  error
		want int // sources
	}{
		{"a line of the spec", &SpecError{File: "kairos.yaml", Line: 1, Column: 9, Key: "flavor", Err: cause}, 1},
		{"wrapped", fmt.Errorf("target iso: %w", &SpecError{File: "kairos.yaml", Line: 1, Err: cause}), 1},
		// A key the file does not set has no line to print.
		{"no line", &SpecError{File: "kairos.yaml", Key: "variant", Err: cause}, 0},
		{"another file", &SpecError{File: "other.yaml", Line: 1, Err: cause}, 0},
		{"not about the spec", cause, 0},
	} {
		err := withSpecSource(tc.err, sm)
		if got := len(errdefs.Sources(err)); got != tc.want {
			t.Errorf("%s: %d sources, want %d", tc.name, got, tc.want)
		}
		if err.Error() != tc.err.Error() || !errors.Is(err, cause) {
			t.Errorf("%s: error %q does not keep %q and its cause", tc.name, err, tc.err)
		}
	}
	if withSpecSource(nil, sm) != nil {
		t.Error("withSpecSource(nil) is not nil")
	}
	// Without a spec file there is nothing to attach.
	se := &SpecError{File: "kairos.yaml", Line: 1, Err: cause}
	if err := withSpecSource(se, nil); err != error(se) {
		t.Errorf("without a source map: %v", err)
	}
}
