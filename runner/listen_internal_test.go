package runner

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestListenerFollowsNewNamespaces: connected (against real PostgreSQL),
// the listener wakes the claimer; a namespace announced on
// NamespacesChannel is served and its notifications heard.
func TestListenerFollowsNewNamespaces(t *testing.T) {
	pool := pgtest.Pool(t)
	ns := newNamespaces(nil)
	w := &fakeWaker{woken: make(chan struct{}, 16)}
	l := newListener(listenerConfig{}, listenerDeps{
		connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		},
		namespaces: ns, waker: w, stats: &stats{}, log: discardLogger(),
	})
	ctx := context.Background()
	if err := l.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Stop(ctx) }()
	receive(t, w.woken) // connected
	if !l.connected() {
		t.Fatal("woken before connected")
	}
	notify := func(ch, payload string) {
		t.Helper()
		if _, err := pool.Exec(ctx, "SELECT pg_notify($1, $2)", ch, payload); err != nil {
			t.Fatal(err)
		}
		receive(t, w.woken)
	}
	notify(store.NamespacesChannel, "payments")
	if !slices.Contains(ns.current(), "payments") {
		t.Fatalf("serving %v, want payments added", ns.current())
	}
	// Heard only if the listener now LISTENs on the new namespace.
	notify(store.Channel("payments"), "")
}
