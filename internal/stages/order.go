package stages

import (
	"fmt"
	"strconv"

	"github.com/kairos-io/kairos/internal/cloudconfig"
)

// CloudInitStage is where a cloud-config's cloud-init keys (write_files,
// runcmd, bootcmd, hostname, ssh_authorized_keys) run, as one step named
// cloud-init before the file's own boot steps.
const CloudInitStage = "boot"

// op is one step of a stage run, named as upstream names it for `after`:
// "<config name>.<step name>", the config's name being its `name:` key or
// else its file path, the step's its `name:` or else its index.
type op struct {
	src   Source
	stage string // the stage name it came from (x.before, x, x.after)
	index int
	step  cloudconfig.Step
	name  string
}

func (o op) label() string {
	l := fmt.Sprintf("%s: stages.%s[%d]", o.src.Path, o.stage, o.index)
	if o.step.Name != "" {
		l += " (" + o.step.Name + ")"
	}
	return l
}

// order lists the steps of one stage name across sources in the order
// they run: each step after the one before it (files in order, steps in
// file order), except a step with `after`, which runs after the steps it
// names instead. Names that no step of this stage has are reported and
// ignored; steps caught in a cycle are reported and not run.
func order(sources []Source, stage string) ([]op, []error) {
	var ops []op
	byName := map[string]int{}
	for _, src := range sources {
		cfgName := src.Config.Name
		if cfgName == "" {
			cfgName = src.Path
		}
		steps := src.Config.Stages[stage]
		if stage == CloudInitStage && src.Header {
			if ci := src.Config.CloudInitStep(); ci != nil {
				steps = append([]cloudconfig.Step{*ci}, steps...)
			}
		}
		for i, st := range steps {
			stepName := st.Name
			if stepName == "" {
				stepName = strconv.Itoa(i)
			}
			o := op{src: src, stage: stage, index: i, step: st, name: cfgName + "." + stepName}
			if _, dup := byName[o.name]; !dup {
				byName[o.name] = len(ops)
			}
			ops = append(ops, o)
		}
	}
	var errs []error
	deps := make([][]int, len(ops))
	for i, o := range ops {
		if len(o.step.After) == 0 {
			if i > 0 {
				deps[i] = []int{i - 1}
			}
			continue
		}
		for _, a := range o.step.After {
			j, ok := byName[a.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("%s: after: no step %q in stage %s (it runs in file order)", o.label(), a.Name, stage))
				continue
			}
			if j != i {
				deps[i] = append(deps[i], j)
			}
		}
	}
	// Kahn's algorithm, taking the first ready step in file order each
	// time: without `after` the order is the files' order.
	done := make([]bool, len(ops))
	var out []op
	for len(out) < len(ops) {
		next := -1
		for i := range ops {
			if done[i] {
				continue
			}
			ready := true
			for _, j := range deps[i] {
				ready = ready && done[j]
			}
			if ready {
				next = i
				break
			}
		}
		if next < 0 {
			for i := range ops {
				if !done[i] {
					errs = append(errs, fmt.Errorf("%s: after: waits for itself through other steps (a cycle): not run", ops[i].label()))
				}
			}
			break
		}
		done[next] = true
		out = append(out, ops[next])
	}
	return out, errs
}
