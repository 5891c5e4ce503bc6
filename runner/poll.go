package runner

import (
	"cmp"
	"context"
	"time"
)

// pollerConfig configures a [poller].
type pollerConfig struct {
	// Interval is the mean interval (jittered ±20%). Default
	// [PollIntervalDefault].
	Interval time.Duration
	// Jitter scales a duration by a random factor in [1-f, 1+f). Default
	// none (d itself).
	Jitter func(d time.Duration, f float64) time.Duration
}

func (c *pollerConfig) withDefaults() {
	if c.Jitter == nil {
		c.Jitter = noJitter
	}
	c.Interval = cmp.Or(c.Interval, PollIntervalDefault)
}

// poller wakes the claimer at jittered intervals, so work is found even
// without notifications (polling_only, a lost LISTEN connection, due
// retries). When serving every namespace, while the listener is down, it
// also picks up new namespaces.
type poller struct {
	cfg   pollerConfig
	waker waker
	// discover, when set, adds the namespaces created meanwhile; it runs
	// only while listening reports false (the listener does it otherwise).
	discover  func(ctx context.Context)
	listening func() bool
	startStop
}

func newPoller(cfg pollerConfig, w waker, discover func(ctx context.Context), listening func() bool) *poller {
	cfg.withDefaults()
	return &poller{cfg: cfg, waker: w, discover: discover, listening: listening}
}

// Start starts polling.
func (p *poller) Start(ctx context.Context) error { return p.start(ctx, p.loop) }

func (p *poller) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.cfg.Jitter(p.cfg.Interval, 0.2)):
		}
		if p.discover != nil && !p.listening() {
			p.discover(ctx)
		}
		p.waker.wake()
	}
}
