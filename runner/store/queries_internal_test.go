package store

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// The state triggers' check_violation becomes a TransitionError; other
// errors pass unchanged.
func TestAsTransitionError(t *testing.T) {
	pe := &pgconn.PgError{Code: "23514", ConstraintName: ConstraintStepTransition,
		Message: "illegal step transition: step x cannot move from complete to enqueued"}
	err := asTransitionError(fmt.Errorf("wrapped: %w", pe))
	var te *TransitionError
	if !errors.As(err, &te) || te.Constraint != ConstraintStepTransition || te.Message != pe.Message || !errors.Is(err, pe) {
		t.Fatalf("asTransitionError = %#v", err)
	}
	other := &pgconn.PgError{Code: "23514", ConstraintName: "tasks_steps_done_le_total"}
	if err := asTransitionError(other); !errors.Is(err, other) || errors.As(err, &te) {
		t.Fatalf("another check violation became %#v", err)
	}
	if !retryableTxError(&pgconn.PgError{Code: "40P01"}) || retryableTxError(pe) {
		t.Fatal("retryableTxError misjudges")
	}
}

func TestStateConflictMessage(t *testing.T) {
	id := uuid.MustParse("01900000-0000-7000-8000-000000000001")
	e := &StateConflictError{Action: "cancel", Kind: "task", Items: []StateConflict{{ID: id, State: "complete"}},
		Allowed: []string{"pending", "steps_in_process", "blocked_by_failures"}}
	want := "store: cannot cancel task 01900000-0000-7000-8000-000000000001 (complete): only a task in state pending, steps_in_process or blocked_by_failures can be"
	if e.Error() != want {
		t.Fatalf("message = %q\nwant      %q", e.Error(), want)
	}
	m := &MissingError{Kind: "step", IDs: []uuid.UUID{id}}
	if !errors.Is(m, ErrNotFound) {
		t.Fatal("MissingError is not ErrNotFound")
	}
}
