package callout

import (
	"context"
	"testing"
	"time"
)

func TestLimiterAIMD(t *testing.T) {
	l := newLimiter(8)
	take := func(n int) []uint64 {
		gens := make([]uint64, n)
		for i := range gens {
			g, err := l.acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			gens[i] = g
		}
		return gens
	}
	// Eight calls in flight, all throttled: one cut (8 -> 4), not eight.
	gens := take(8)
	for _, g := range gens {
		l.done(g, true)
	}
	if limit, throttled := l.state(); limit != 4 || throttled != 8 {
		t.Fatalf("after a burst of 429s: limit %d, throttled %d; want 4, 8", limit, throttled)
	}
	// Four successes (one per slot) raise it by one.
	for _, g := range take(4) {
		l.done(g, false)
	}
	if limit, _ := l.state(); limit != 5 {
		t.Fatalf("after 4 successes: limit %d, want 5", limit)
	}
	// Repeated cuts stop at one call.
	for range 5 {
		g := take(1)[0]
		l.done(g, true)
	}
	if limit, _ := l.state(); limit != 1 {
		t.Fatalf("after many cuts: limit %d, want 1", limit)
	}
	// Recovery never passes the configured maximum.
	for range 100 {
		l.done(take(1)[0], false)
	}
	if limit, _ := l.state(); limit != 8 {
		t.Fatalf("after recovery: limit %d, want 8", limit)
	}
}

func TestLimiterUnlimitedEndpoint(t *testing.T) {
	l := newLimiter(0)
	var gens []uint64
	for range 10 {
		g, _ := l.acquire(context.Background())
		gens = append(gens, g)
	}
	l.done(gens[0], true) // ten in flight when throttled
	if limit, _ := l.state(); limit != 5 {
		t.Fatalf("limit %d, want 5 (half the calls in flight)", limit)
	}
	for _, g := range gens[1:] {
		l.done(g, false) // started before the cut: no credit
	}
	// Climbing back to ten lifts the limit.
	for range 100 {
		g, _ := l.acquire(context.Background())
		l.done(g, false)
	}
	if limit, _ := l.state(); limit != 0 {
		t.Fatalf("limit %d after recovery, want 0 (none)", limit)
	}
}

func TestLimiterWaitersAndCancel(t *testing.T) {
	l := newLimiter(1)
	g, _ := l.acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(ctx); err == nil {
		t.Fatal("a second call got a slot past the limit")
	}
	got := make(chan uint64)
	go func() {
		g2, err := l.acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		got <- g2
	}()
	l.done(g, false)
	select {
	case g2 := <-got:
		l.done(g2, false)
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter never got the freed slot")
	}
	if l.inUse != 0 || len(l.waiters) != 0 {
		t.Fatalf("inUse %d, waiters %d after all calls", l.inUse, len(l.waiters))
	}
}
