package runner

import (
	"errors"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// ErrNotFound is matched (errors.Is) by the error of an admin operation
// whose task, step, template or endpoint does not exist.
var ErrNotFound = store.ErrNotFound

// ErrTemplateConflict is matched by the error of [Client.RegisterTemplate]
// for a version already registered with a different definition.
var ErrTemplateConflict = store.ErrTemplateConflict

// IsUnavailable reports whether err means the database could not be
// reached (refused, reset or timed-out connections, a server shutting
// down): the operation may succeed if tried again later.
func IsUnavailable(err error) bool { return store.IsUnavailable(err) }

// StateConflictError reports a manual change (cancel, retry, resolve,
// redrive) refused because of the current state of what it would change.
// Nothing was written.
type StateConflictError struct {
	// Action is what was asked: cancel, retry, resolve or redrive.
	Action string
	// Kind is "task" or "step".
	Kind string
	// Items are the tasks or steps in the way, with their states.
	Items []StateConflict
	// Allowed are the states the action applies to.
	Allowed []string
	err     error
}

// StateConflict is one task or step whose state refused a change.
type StateConflict struct {
	ID    uuid.UUID
	State string
}

func (e *StateConflictError) Error() string { return e.err.Error() }
func (e *StateConflictError) Unwrap() error { return e.err }

// MissingError reports ids that name no task or step. It matches
// [ErrNotFound]. Nothing was written.
type MissingError struct {
	Kind string
	IDs  []uuid.UUID
	err  error
}

func (e *MissingError) Error() string { return e.err.Error() }
func (e *MissingError) Unwrap() error { return e.err }

// TransitionError is a state change refused by the database's state
// machine, for instance because a concurrent change got there first.
// Nothing was written.
type TransitionError struct {
	// Constraint is step_state_transition or task_state_transition.
	Constraint string
	// Message is the database's, e.g. "illegal step transition: step ...
	// cannot move from complete to enqueued".
	Message string
	err     error
}

func (e *TransitionError) Error() string { return e.err.Error() }
func (e *TransitionError) Unwrap() error { return e.err }

// TemplateInUseError is returned by [Client.DeleteTemplate] for a template
// that still has unfinished tasks. Nothing was deleted.
type TemplateInUseError struct {
	Namespace, Name, Version string
	// Unfinished counts its tasks in state pending, steps_in_process or
	// blocked_by_failures.
	Unfinished int
	err        error
}

func (e *TemplateInUseError) Error() string { return e.err.Error() }
func (e *TemplateInUseError) Unwrap() error { return e.err }

// adminError gives the store's typed errors the runner's types; the
// message and the wrapped chain stay as they were.
func adminError(err error) error {
	var (
		conflict *store.StateConflictError
		missing  *store.MissingError
		illegal  *store.TransitionError
		inUse    *store.TemplateInUseError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &conflict):
		items := make([]StateConflict, len(conflict.Items))
		for i, it := range conflict.Items {
			items[i] = StateConflict(it)
		}
		return &StateConflictError{Action: conflict.Action, Kind: conflict.Kind, Items: items, Allowed: conflict.Allowed, err: err}
	case errors.As(err, &missing):
		return &MissingError{Kind: missing.Kind, IDs: missing.IDs, err: err}
	case errors.As(err, &illegal):
		return &TransitionError{Constraint: illegal.Constraint, Message: illegal.Message, err: err}
	case errors.As(err, &inUse):
		return &TemplateInUseError{Namespace: inUse.Namespace, Name: inUse.Name, Version: inUse.Version, Unfinished: inUse.Unfinished, err: err}
	}
	return err
}
