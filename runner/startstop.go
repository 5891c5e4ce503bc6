package runner

import (
	"context"
	"errors"
	"sync"
)

// service is one part of a [Runner] with its own goroutines: the runner
// starts its services in order and stops them in the reverse order (see
// [Runner.services]).
type service interface {
	// Start starts the service's goroutines under a context derived from
	// ctx: cancelling ctx is a hard stop.
	Start(ctx context.Context) error
	// Stop stops the service gracefully and waits for its goroutines; ctx
	// bounds what the service waits for (not its goroutines' exit).
	Stop(ctx context.Context) error
	// Wait blocks until the service's goroutines have exited, as they do
	// on their own once the Start context is cancelled.
	Wait()
}

// errAlreadyStarted is returned by a service's second Start.
var errAlreadyStarted = errors.New("runner: service already started")

// startStop runs a service's one main goroutine: Start launches it under its
// own context, Stop cancels that context and waits. A service embeds it and
// supplies its loop; services that stop otherwise (the completer drains
// first) use start and wait and stop their loop themselves.
type startStop struct {
	mu      sync.Mutex
	started bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// start runs loop on a goroutine with a context derived from ctx, once.
func (s *startStop) start(ctx context.Context, loop func(ctx context.Context)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errAlreadyStarted
	}
	s.started = true
	ctx, s.cancel = context.WithCancel(ctx)
	s.ctx = ctx
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		loop(ctx)
	}()
	return nil
}

// stop cancels the loop's context and waits for it to return. It does
// nothing if the service never started.
func (s *startStop) stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

// context returns the loop's context, nil before start.
func (s *startStop) context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ctx
}

// wait blocks until the loop has returned (at once if it never started).
func (s *startStop) wait() {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		<-done
	}
}

// Stop cancels the service's context and waits for its loop.
func (s *startStop) Stop(context.Context) error { s.stop(); return nil }

// Wait blocks until the service's loop has returned.
func (s *startStop) Wait() { s.wait() }

// waitGroup waits for wg, or until ctx is done.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
