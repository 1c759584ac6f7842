package llbdump

import (
	"fmt"
	"strconv"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
)

// Graph is a marshalled definition decoded into its ops. Tests that check
// what an LLB means (not only how it dumps) walk it directly.
type Graph struct {
	Ops   map[digest.Digest]*pb.Op
	Names map[digest.Digest]string // llb.WithCustomName
	// Order lists the ops depth first from the output, each after its
	// inputs in the op's own input order: a function of the ops' content
	// alone, so the same LLB always dumps the same way.
	Order []digest.Digest
	Num   map[digest.Digest]int // 1-based position in Order, the "#N" of the dump
	Out   *pb.Input             // the definition's result
}

// Parse decodes a definition. It fails on what would make the dump
// ambiguous or incomplete: no result marker, an input missing from the
// definition, a cycle, or an op the result does not reach.
func Parse(def *llb.Definition) (*Graph, error) {
	g := &Graph{Ops: map[digest.Digest]*pb.Op{}, Names: map[digest.Digest]string{}, Num: map[digest.Digest]int{}}
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
			g.Out = op.Inputs[0]
			continue
		}
		d := digest.FromBytes(dt)
		g.Ops[d] = &op
		if m, ok := def.Metadata[d]; ok {
			g.Names[d] = m.Description["llb.customname"]
		}
	}
	var visit func(d digest.Digest) error
	visiting := map[digest.Digest]bool{}
	visit = func(d digest.Digest) error {
		if g.Num[d] != 0 {
			return nil
		}
		if visiting[d] {
			return fmt.Errorf("cycle at %s", d)
		}
		visiting[d] = true
		op, ok := g.Ops[d]
		if !ok {
			return fmt.Errorf("input %s is not in the definition", d)
		}
		for _, in := range op.Inputs {
			if err := visit(digest.Digest(in.Digest)); err != nil {
				return err
			}
		}
		g.Order = append(g.Order, d)
		g.Num[d] = len(g.Order)
		return nil
	}
	if err := visit(digest.Digest(g.Out.Digest)); err != nil {
		return nil, err
	}
	if len(g.Order) != len(g.Ops) {
		return nil, fmt.Errorf("%d ops of the definition are not reachable from its result", len(g.Ops)-len(g.Order))
	}
	return g, nil
}

// Ref names an op's input as the dump does: "#3", or "#3 output 1".
func (g *Graph) Ref(in *pb.Input) string {
	s := "#" + strconv.Itoa(g.Num[digest.Digest(in.Digest)])
	if in.Index != 0 {
		s += " output " + strconv.FormatInt(in.Index, 10)
	}
	return s
}

// Input returns the digest of op's i-th input (an index into op.Inputs, as
// mounts and file actions give it).
func (g *Graph) Input(op *pb.Op, i int64) digest.Digest {
	return digest.Digest(op.Inputs[i].Digest)
}
