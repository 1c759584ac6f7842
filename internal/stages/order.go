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
	if o.index < 0 {
		return fmt.Sprintf("%s: cloud-init keys (write_files, runcmd, hostname...)", o.src.Path)
	}
	l := fmt.Sprintf("%s: stages.%s[%d]", o.src.Path, o.stage, o.index)
	if o.step.Name != "" {
		l += " (" + o.step.Name + ")"
	}
	return l
}

// order lists the steps of one stage name across sources in the order
// they run: the files' order, except that a step with `after` waits until
// the steps it names have run (then runs at once), while the steps after
// it go on; so `after` may name a step further down or in a later file.
// Names that no step of this stage has are reported and ignored; steps
// waiting on each other (a cycle) are reported and do not run.
func order(sources []Source, stage string) ([]op, []error) {
	var ops []op
	byName := map[string]int{}
	for _, src := range sources {
		cfgName := src.Config.Name
		if cfgName == "" {
			cfgName = src.Path
		}
		if stage == CloudInitStage && src.Header {
			if ci := src.Config.CloudInitStep(); ci != nil {
				// Before the file's own steps, which keep their
				// indexes (and so their default names).
				o := op{src: src, stage: stage, index: -1, step: *ci, name: cfgName + "." + ci.Name}
				byName[o.name] = len(ops)
				ops = append(ops, o)
			}
		}
		for i, st := range src.Config.Stages[stage] {
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
	done := make([]bool, len(ops))
	var out []op
	ready := func(i int) bool {
		for _, j := range deps[i] {
			if !done[j] {
				return false
			}
		}
		return true
	}
	var waiting []int
	run := func(i int) {
		done[i] = true
		out = append(out, ops[i])
	}
	for i := range ops {
		if !ready(i) {
			waiting = append(waiting, i)
			continue
		}
		run(i)
		// Steps that waited for this one (or for one of them) run now,
		// in file order.
		for progress := true; progress; {
			progress = false
			for k, w := range waiting {
				if w >= 0 && ready(w) {
					run(w)
					waiting[k] = -1
					progress = true
				}
			}
		}
	}
	for _, w := range waiting {
		if w >= 0 {
			errs = append(errs, fmt.Errorf("%s: after: waits for itself through other steps (a cycle): not run", ops[w].label()))
		}
	}
	return out, errs
}
