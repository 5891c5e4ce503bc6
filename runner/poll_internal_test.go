package runner

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestPollerDiscoversOnlyWhileNotListening: each tick wakes the claimer,
// and looks for new namespaces only while the listener is down.
func TestPollerDiscoversOnlyWhileNotListening(t *testing.T) {
	w := &fakeWaker{woken: make(chan struct{})}
	var mu sync.Mutex
	listening, discovered := true, 0
	p := newPoller(pollerConfig{Interval: time.Millisecond}, w,
		func(context.Context) { mu.Lock(); discovered++; mu.Unlock() },
		func() bool { mu.Lock(); defer mu.Unlock(); return listening })
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	receive(t, w.woken)
	mu.Lock()
	if discovered != 0 {
		t.Errorf("discovered %d times while listening, want 0", discovered)
	}
	listening = false
	mu.Unlock()
	receive(t, w.woken) // may be the tick that read listening before the change
	receive(t, w.woken)
	go func() {
		for range w.woken {
		}
	}()
	_ = p.Stop(context.Background())
	close(w.woken)
	if discovered == 0 {
		t.Error("never discovered while not listening")
	}
}
