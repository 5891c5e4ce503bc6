package runner

import (
	"context"
	"slices"
	"sync"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// namespaces is the set of namespaces a runner serves. Configured
// namespaces are fixed; serving every namespace (none configured), the set
// grows as the listener and the poller see new ones.
type namespaces struct {
	all  bool // serve every namespace: the set may grow
	mu   sync.Mutex
	list []string
}

func newNamespaces(configured []string) *namespaces {
	return &namespaces{all: len(configured) == 0, list: slices.Clone(configured)}
}

// current returns the namespaces served now. The caller must not modify it.
func (n *namespaces) current() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.list
}

// snapshot returns a copy of the namespaces served now.
func (n *namespaces) snapshot() []string { return slices.Clone(n.current()) }

// set replaces the served namespaces (at start, serving every namespace).
func (n *namespaces) set(list []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.list = list
}

// add starts serving a namespace seen for the first time, reporting
// whether it is new. Configured namespaces never grow.
func (n *namespaces) add(ns string) bool {
	if !n.all || ns == "" {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if slices.Contains(n.list, ns) {
		return false
	}
	// Appending to a slice handed out by current must not change what its
	// holders see: copy on growth.
	n.list = append(slices.Clip(n.list), ns)
	return true
}

// discover adds the namespaces created since the last look; a failed look
// changes nothing (the next one catches up).
func (n *namespaces) discover(ctx context.Context, db store.DB) {
	if ns, err := store.ListNamespaces(ctx, db); err == nil {
		for _, name := range ns {
			n.add(name)
		}
	}
}
