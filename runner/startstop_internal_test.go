package runner

import (
	"context"
	"errors"
	"testing"
)

// TestStartStop: a service starts once; Stop cancels its loop and waits;
// Wait and Stop before Start return at once.
func TestStartStop(t *testing.T) {
	var s startStop
	s.wait()
	s.stop()
	running := make(chan struct{})
	if err := s.start(context.Background(), func(ctx context.Context) { close(running); <-ctx.Done() }); err != nil {
		t.Fatal(err)
	}
	if err := s.start(context.Background(), func(context.Context) {}); !errors.Is(err, errAlreadyStarted) {
		t.Fatalf("second start: %v, want errAlreadyStarted", err)
	}
	<-running
	s.stop()
	s.wait()
	if s.context().Err() == nil {
		t.Error("the loop's context is still live after stop")
	}
}
