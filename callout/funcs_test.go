package callout_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestFuncsTurnProblemsIntoResults(t *testing.T) {
	t.Parallel()
	var fs callout.Funcs
	release := make(chan struct{})
	fs.Register("ok", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: true, Result: []byte(`1`)}, nil
	})
	fs.Register("err", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{}, errors.New("flaky upstream")
	})
	fs.Register("permanent", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{}, callout.Permanent(errors.New("bad input"))
	})
	fs.Register("panic", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		panic("nil map")
	})
	fs.Register("ignores-deadline", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		<-release
		return contracts.StepResult{Success: true}, nil
	})
	fs.Register("fails-quietly", func(context.Context, *contracts.StepEnvelope) (contracts.StepResult, error) {
		return contracts.StepResult{Success: false}, nil
	})

	for _, tc := range []struct {
		name, errType string
		success       bool
		retryable     bool
		msg           string
	}{
		{name: "ok", success: true},
		{name: "err", errType: contracts.ErrorTypeHandler, retryable: true, msg: "flaky upstream"},
		{name: "permanent", errType: contracts.ErrorTypeHandler, retryable: false, msg: "bad input"},
		{name: "panic", errType: contracts.ErrorTypePanic, retryable: false, msg: "handler panicked: nil map"},
		{name: "ignores-deadline", errType: contracts.ErrorTypeTimeout, retryable: true, msg: "timeout"},
		{name: "fails-quietly", errType: contracts.ErrorTypeHandler, retryable: true, msg: "without an error"},
	} {
		inv, ok := fs.Resolve("ns", tc.name)
		if !ok {
			t.Fatalf("%s not resolved", tc.name)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		res := inv.Invoke(ctx, &contracts.StepEnvelope{})
		cancel()
		if res.Success != tc.success {
			t.Errorf("%s: success = %v", tc.name, res.Success)
		}
		if tc.success {
			if res.Status != contracts.StatusCompleted {
				t.Errorf("%s: status = %q", tc.name, res.Status)
			}
			continue
		}
		if res.Error == nil || res.Error.ErrorType != tc.errType || res.Error.Retryable != tc.retryable || !strings.Contains(res.Error.Message, tc.msg) {
			t.Errorf("%s: error = %+v, want type %s retryable %v containing %q", tc.name, res.Error, tc.errType, tc.retryable, tc.msg)
		}
	}
	if _, ok := fs.Resolve("ns", "missing"); ok {
		t.Error("an unregistered callable resolved")
	}
	// The abandoned handler is still owned: Wait sees it finish.
	close(release)
	if err := fs.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
}
