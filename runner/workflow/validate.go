package workflow

import (
	"container/heap"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Naming rules and value ranges. Lengths are the shared limits of
// [contracts] (the database columns and the API's schemas use the same).
var (
	namePattern     = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}$`, contracts.MaxTemplateNameLen-1))
	stepNamePattern = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}$`, contracts.MaxStepNameLen-1))
	versionPattern  = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,%d}$`, contracts.MaxVersionLen-1))
)

const (
	maxCallableLen    = contracts.MaxCallableLen
	maxMaxAttempts    = 1_000_000
	maxBackoffMs      = 3_600_000 // one hour
	maxTimeoutSeconds = 7 * 24 * 3600
	maxBatchSize      = 100_000
	maxParallelism    = 1000
)

// checkResult is the outcome of semantic validation; when it has no problems
// it holds what compiled() needs.
type checkResult struct {
	problems problems
	t        *Template
	index    map[string]int
	parents  [][]int // template indices of each step's resolved dependencies
	order    []int   // topological order (valid when there is no cycle)
	schema   *jsonschema.Schema
}

// check validates t and returns every problem found.
func (t *Template) check() *checkResult {
	r := &checkResult{t: t}
	ps := &r.problems

	checkName(ps, "name", t.Name, namePattern)
	checkNamespace(ps, t.NamespaceName)
	checkName(ps, "version", t.Version, versionPattern)
	if len(t.InputSchema) > 0 {
		sch, schemaProbs := compileSchema(t.InputSchema)
		*ps = append(*ps, schemaProbs...)
		r.schema = sch
	}

	switch n := len(t.Steps); {
	case n == 0:
		ps.add("steps", "at least one step is required")
		return r
	case n > MaxSteps:
		ps.add("steps", fmt.Sprintf("%d steps; at most %d are allowed", n, MaxSteps))
		return r
	}

	r.index = make(map[string]int, len(t.Steps))
	for i := range t.Steps {
		s := &t.Steps[i]
		p := fmt.Sprintf("steps[%d].name", i)
		if !checkName(ps, p, s.Name, stepNamePattern) {
			continue
		}
		if first, dup := r.index[s.Name]; dup {
			ps.add(p, fmt.Sprintf("duplicate step name %q (first at steps[%d])", s.Name, first))
			continue
		}
		r.index[s.Name] = i
	}

	r.parents = make([][]int, len(t.Steps))
	for i := range t.Steps {
		r.checkStep(i)
	}
	edges := 0
	for _, ps := range r.parents {
		edges += len(ps)
	}
	if edges > MaxEdges {
		ps.add("steps", fmt.Sprintf("%d dependencies in all; at most %d are allowed (each one is stored with every task of the template)", edges, MaxEdges))
		return r
	}
	r.checkBatches()
	if r.checkCycles() {
		r.checkDynamicDependencies()
	}
	return r
}

// checkNamespace checks a namespace name as the database does
// ([contracts.NamespacePattern]).
func checkNamespace(ps *problems, v string) {
	const path = "namespace_name"
	switch n := utf8.RuneCountInString(v); {
	case v == "":
		ps.add(path, "required")
	case n > contracts.MaxNamespaceLen:
		ps.add(path, fmt.Sprintf("%d characters; at most %d are allowed", n, contracts.MaxNamespaceLen))
	case !contracts.NamespacePattern.MatchString(v):
		ps.add(path, fmt.Sprintf("invalid namespace %q: must match %s (lowercase letters, digits, '_', '.' and '-')", v, contracts.NamespacePattern))
	}
}

func checkName(ps *problems, path, v string, re *regexp.Regexp) bool {
	switch {
	case v == "":
		ps.add(path, "required")
	case !re.MatchString(v):
		ps.add(path, fmt.Sprintf("invalid name %q: must match %s", v, re))
	default:
		return true
	}
	return false
}

func (r *checkResult) checkStep(i int) {
	s := &r.t.Steps[i]
	ps := &r.problems
	p := fmt.Sprintf("steps[%d]", i)

	if !slices.Contains(stepTypes, s.stepType()) {
		ps.add(p+".type", fmt.Sprintf("unknown step type %q; allowed: %s", s.Type, joinValues(stepTypes)))
	}

	h := &s.Handler
	switch {
	case h.Callable == "":
		ps.add(p+".handler.callable", "required")
	case len(h.Callable) > maxCallableLen:
		ps.add(p+".handler.callable", fmt.Sprintf("longer than %d characters", maxCallableLen))
	case strings.IndexFunc(h.Callable, isSpaceOrControl) >= 0:
		ps.add(p+".handler.callable", fmt.Sprintf("%q must not contain spaces or control characters", h.Callable))
	}
	if strings.IndexFunc(h.Method, isSpaceOrControl) >= 0 || len(h.Method) > 128 {
		ps.add(p+".handler.method", fmt.Sprintf("invalid method %q", h.Method))
	}

	seen := make(map[string]bool, len(s.Dependencies))
	for j, dep := range s.Dependencies {
		dp := fmt.Sprintf("%s.dependencies[%d]", p, j)
		k, known := r.index[dep]
		switch {
		case dep == "":
			ps.add(dp, "must not be empty")
		case dep == s.Name:
			ps.add(dp, fmt.Sprintf("step %q depends on itself", dep))
		case seen[dep]:
			ps.add(dp, fmt.Sprintf("duplicate dependency %q", dep))
		case !known:
			ps.add(dp, fmt.Sprintf("unknown step %q", dep))
		default:
			if owner, named := r.index[s.Name]; !named || owner == i { // not a duplicate
				r.parents[i] = append(r.parents[i], k)
			}
		}
		seen[dep] = true
	}

	rt := &s.Retry
	rp := p + ".retry"
	checkRange(ps, rp+".max_attempts", rt.MaxAttempts, maxMaxAttempts)
	checkRange(ps, rp+".backoff_base_ms", rt.BackoffBaseMs, maxBackoffMs)
	checkRange(ps, rp+".max_backoff_ms", rt.MaxBackoffMs, maxBackoffMs)
	if rt.BackoffBaseMs > 0 && rt.MaxBackoffMs > 0 && rt.MaxBackoffMs < rt.BackoffBaseMs {
		ps.add(rp+".max_backoff_ms", fmt.Sprintf("must be >= backoff_base_ms (%d)", rt.BackoffBaseMs))
	}
	if rt.Strategy != "" && !slices.Contains(backoffStrategies, rt.Strategy) {
		ps.add(rp+".backoff", fmt.Sprintf("unknown backoff %q; allowed: %s", rt.Strategy, joinValues(backoffStrategies)))
	}
	checkRange(ps, p+".timeout_seconds", s.TimeoutSeconds, maxTimeoutSeconds)

	if b := s.BatchConfig; b != nil {
		bp := p + ".batch_config"
		if t := s.stepType(); t != StepBatchable && t != StepBatchWorker {
			ps.add(bp, fmt.Sprintf("only allowed on batchable and batch_worker steps, not on %s", t))
		}
		if b.BatchSize < 1 || b.BatchSize > maxBatchSize {
			ps.add(bp+".batch_size", fmt.Sprintf("must be between 1 and %d", maxBatchSize))
		}
		if b.Parallelism < 1 || b.Parallelism > maxParallelism {
			ps.add(bp+".parallelism", fmt.Sprintf("must be between 1 and %d", maxParallelism))
		}
		if len(b.CursorField) > 255 {
			ps.add(bp+".cursor_field", "longer than 255 characters")
		}
		if b.FailureStrategy != "" && !slices.Contains(failureStrategies, b.FailureStrategy) {
			ps.add(bp+".failure_strategy", fmt.Sprintf("unknown failure strategy %q; allowed: %s", b.FailureStrategy, joinValues(failureStrategies)))
		}
	}
}

// checkRange checks an optional positive integer (0 = unset).
func checkRange(ps *problems, path string, v, hi int) {
	switch {
	case v < 0:
		ps.add(path, "must be >= 1")
	case v > hi:
		ps.add(path, fmt.Sprintf("must be <= %d", hi))
	}
}

func isSpaceOrControl(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }

func joinValues[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

// checkBatches enforces the batch rules. Tasker's templates come in two
// layouts, both accepted: the batchable step carries batch_config naming its
// worker_template, or (as in Tasker's own examples) the batchable step has no
// batch_config and a batch_worker step depends on it, optionally carrying the
// batch_config itself.
func (r *checkResult) checkBatches() {
	steps := r.t.Steps
	ps := &r.problems
	for i := range steps {
		s := &steps[i]
		p := fmt.Sprintf("steps[%d]", i)
		switch s.stepType() {
		case StepBatchable:
			if s.BatchConfig == nil && len(r.workersOf(i)) == 0 {
				ps.add(p+".batch_config", fmt.Sprintf("required for batchable steps (or declare a batch_worker step that depends on %q)", s.Name))
			}
		case StepBatchWorker:
			n := 0
			for _, k := range r.parents[i] {
				if steps[k].stepType() == StepBatchable {
					n++
				}
			}
			if n != 1 {
				ps.add(p+".dependencies", "a batch_worker step must depend on exactly one batchable step (the one that creates it)")
			}
		}
		b := s.BatchConfig
		if b == nil {
			continue
		}
		wp := p + ".batch_config.worker_template"
		if b.WorkerTemplate == "" {
			ps.add(wp, "required")
			continue
		}
		w, ok := r.index[b.WorkerTemplate]
		switch {
		case !ok:
			ps.add(wp, fmt.Sprintf("unknown step %q", b.WorkerTemplate))
		case steps[w].stepType() != StepBatchWorker:
			ps.add(wp, fmt.Sprintf("step %q is of type %s; must be batch_worker", b.WorkerTemplate, steps[w].stepType()))
		case s.stepType() == StepBatchable && !slices.Contains(r.parents[w], i):
			ps.add(wp, fmt.Sprintf("batch_worker step %q must depend on %q", b.WorkerTemplate, s.Name))
		}
	}
}

// workersOf returns the batch_worker steps that depend on step i.
func (r *checkResult) workersOf(i int) []int {
	var out []int
	for k := range r.t.Steps {
		if r.t.Steps[k].stepType() == StepBatchWorker && slices.Contains(r.parents[k], i) {
			out = append(out, k)
		}
	}
	return out
}

// checkDynamicDependencies rejects dependencies on a batch_worker step from
// anything but a deferred_convergence step: only a convergence step can wait
// for "every worker instance".
func (r *checkResult) checkDynamicDependencies() {
	steps := r.t.Steps
	for i := range steps {
		if steps[i].stepType() == StepDeferredConvergence {
			continue
		}
		for j, dep := range steps[i].Dependencies {
			if k, ok := r.index[dep]; ok && steps[k].stepType() == StepBatchWorker {
				r.problems.add(fmt.Sprintf("steps[%d].dependencies[%d]", i, j),
					fmt.Sprintf("only deferred_convergence steps may depend on batch_worker step %q", dep))
			}
		}
	}
}

// checkCycles reports every dependency cycle (one per strongly connected
// component) and, when there is none, computes the topological order. Arrows
// in the message point from a dependency to its dependent.
func (r *checkResult) checkCycles() bool {
	n := len(r.t.Steps)
	children := make([][]int, n)
	for i, ps := range r.parents {
		for _, p := range ps {
			children[p] = append(children[p], i)
		}
	}
	sccs := stronglyConnected(n, children)
	acyclic := true
	for _, comp := range sccs {
		if len(comp) < 2 {
			continue
		}
		acyclic = false
		cyc := shortestCycle(slices.Min(comp), comp, children)
		names := make([]string, len(cyc))
		for i, k := range cyc {
			names[i] = r.t.Steps[k].Name
		}
		r.problems.add("steps", "cycle "+strings.Join(names, " -> "))
	}
	if acyclic {
		r.order = topoOrder(r.parents, children)
	}
	return acyclic
}

// stronglyConnected returns the strongly connected components (Tarjan),
// ordered by their smallest member.
func stronglyConnected(n int, edges [][]int) [][]int {
	idx := make([]int, n)
	low := make([]int, n)
	on := make([]bool, n)
	for i := range idx {
		idx[i] = -1
	}
	var stack []int
	var comps [][]int
	next := 0
	var visit func(v int)
	visit = func(v int) {
		idx[v], low[v] = next, next
		next++
		stack = append(stack, v)
		on[v] = true
		for _, w := range edges[v] {
			if idx[w] < 0 {
				visit(w)
				low[v] = min(low[v], low[w])
			} else if on[w] {
				low[v] = min(low[v], idx[w])
			}
		}
		if low[v] == idx[v] {
			var comp []int
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				on[w] = false
				comp = append(comp, w)
				if w == v {
					break
				}
			}
			comps = append(comps, comp)
		}
	}
	for v := range n {
		if idx[v] < 0 {
			visit(v)
		}
	}
	slices.SortFunc(comps, func(a, b []int) int { return slices.Min(a) - slices.Min(b) })
	return comps
}

// shortestCycle finds, by breadth-first search inside comp, the shortest
// cycle through start, returned as start, ..., start.
func shortestCycle(start int, comp []int, edges [][]int) []int {
	in := make(map[int]bool, len(comp))
	for _, v := range comp {
		in[v] = true
	}
	prev := map[int]int{}
	queue := []int{start}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		for _, w := range edges[v] {
			if !in[w] {
				continue
			}
			if w == start {
				path := []int{start}
				for u := v; u != start; u = prev[u] {
					path = append(path, u)
				}
				path = append(path, start)
				slices.Reverse(path)
				return path
			}
			if _, seen := prev[w]; !seen {
				prev[w] = v
				queue = append(queue, w)
			}
		}
	}
	return []int{start, start} // unreachable for a real component
}

// topoOrder is Kahn's algorithm taking the lowest template index first, so
// the order follows the template wherever dependencies allow.
func topoOrder(parents, children [][]int) []int {
	pending := make([]int, len(parents))
	h := &intHeap{}
	for i, ps := range parents {
		pending[i] = len(ps)
		if pending[i] == 0 {
			heap.Push(h, i)
		}
	}
	order := make([]int, 0, len(parents))
	for h.Len() > 0 {
		v := heap.Pop(h).(int)
		order = append(order, v)
		for _, c := range children[v] {
			if pending[c]--; pending[c] == 0 {
				heap.Push(h, c)
			}
		}
	}
	return order
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
