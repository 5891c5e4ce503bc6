package workflow

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compiled is what a validated template caches: its graph, the initial plan
// skeleton and its compiled input schema. It is immutable once built.
type compiled struct {
	index    map[string]int
	parents  [][]int // template indices
	order    []int   // topological order of all steps
	dynamic  []bool  // created at run time, not at submit
	plan     []planNode
	deferred []string
	schema   *jsonschema.Schema
}

type planNode struct {
	step      int   // template index
	parents   []int // plan indices, ascending
	ancestors []int // plan indices, ascending
}

func (r *checkResult) compiled() *compiled {
	steps := r.t.Steps
	n := len(steps)
	c := &compiled{index: r.index, parents: r.parents, order: r.order, schema: r.schema}

	// A step is dynamic if it is a batch_worker template or reachable from a
	// decision or batch_worker step; parents precede children in order.
	c.dynamic = make([]bool, n)
	for _, i := range r.order {
		if steps[i].stepType() == StepBatchWorker {
			c.dynamic[i] = true
			continue
		}
		for _, p := range r.parents[i] {
			if t := steps[p].stepType(); c.dynamic[p] || t == StepDecision || t == StepBatchWorker {
				c.dynamic[i] = true
				break
			}
		}
	}
	for i := range steps {
		if c.dynamic[i] {
			c.deferred = append(c.deferred, steps[i].Name)
		}
	}

	pos := make([]int, n)
	for _, i := range r.order {
		if !c.dynamic[i] {
			pos[i] = len(c.plan)
			c.plan = append(c.plan, planNode{step: i})
		}
	}
	words := (len(c.plan) + 63) / 64
	anc := make([][]uint64, len(c.plan))
	for k := range c.plan {
		node := &c.plan[k]
		set := make([]uint64, words)
		for _, p := range r.parents[node.step] {
			pk := pos[p] // planned: the plan is closed under dependencies
			node.parents = append(node.parents, pk)
			set[pk/64] |= 1 << (pk % 64)
			for w, bitsOf := range anc[pk] {
				set[w] |= bitsOf
			}
		}
		slices.Sort(node.parents)
		anc[k] = set
		for w, word := range set {
			for word != 0 {
				b := bits.TrailingZeros64(word)
				node.ancestors = append(node.ancestors, w*64+b)
				word &= word - 1
			}
		}
	}
	return c
}

// Plan is what to create when a task is submitted.
type Plan struct {
	// Steps are the steps to create, in topological order (ties broken by
	// template order). Every parent of a planned step is planned.
	Steps []PlannedStep
	// Deferred names, in template order, the template steps created later
	// by decision or batch outcomes (see the package documentation).
	Deferred []string
}

// PlannedStep is one step to create at submit time.
type PlannedStep struct {
	// Index is the step's position in Plan.Steps.
	Index int
	Name  string
	Type  StepType
	// Handler shares its Initialization map with the template: read only.
	Handler Handler
	// Parents are the indices (in Plan.Steps) of the steps this one waits
	// for; Ancestors are all its transitive ancestors. Both ascending.
	Parents   []int
	Ancestors []int
	// PendingParents is the initial pending_parents counter: len(Parents).
	PendingParents int
	// MaxAttempts, Retryable and TimeoutSeconds are resolved for the steps
	// table; TimeoutSeconds is 0 when the template sets none.
	MaxAttempts    int
	Retryable      bool
	TimeoutSeconds int
	// Retry is the step's retry policy with defaults applied, for
	// [Retry.Backoff].
	Retry Retry
}

// Plan returns the steps to create when a task is submitted, with retry
// settings resolved against defaults. It fails only for a template built in
// Go that does not validate, or for negative defaults.
func (t *Template) Plan(defaults RetryDefaults) (*Plan, error) {
	if defaults.MaxAttempts < 0 || defaults.BackoffBaseMs < 0 || defaults.MaxBackoffMs < 0 {
		return nil, fmt.Errorf("workflow: negative retry defaults %+v", defaults)
	}
	c, err := t.prepared()
	if err != nil {
		return nil, err
	}
	p := &Plan{
		Steps:    make([]PlannedStep, len(c.plan)),
		Deferred: slices.Clone(c.deferred),
	}
	for k, node := range c.plan {
		s := &t.Steps[node.step]
		rt := s.Retry.WithDefaults(defaults)
		p.Steps[k] = PlannedStep{
			Index:          k,
			Name:           s.Name,
			Type:           s.stepType(),
			Handler:        s.Handler,
			Parents:        slices.Clone(node.parents),
			Ancestors:      slices.Clone(node.ancestors),
			PendingParents: len(node.parents),
			MaxAttempts:    rt.MaxAttempts,
			Retryable:      *rt.Retryable,
			TimeoutSeconds: s.TimeoutSeconds,
			Retry:          rt,
		}
	}
	return p, nil
}
