package store_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// The stored size is measured as PostgreSQL returns the definition (with a
// space after every ':' and ','), and a too large one stores nothing.
func TestRegisterTemplateStoredSize(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	def := []byte(`{"a":1,"b":[1,2,3]}`) // 19 bytes sent, {"a": 1, "b": [1, 2, 3]} (24) stored
	_, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "ns", Name: "t", Version: "1", Definition: def, MaxDefinitionBytes: len(def)})
	var tl *store.DefinitionTooLargeError
	if !errors.As(err, &tl) || tl.Size != 24 || tl.Limit != len(def) {
		t.Fatalf("err = %v", err)
	}
	if _, err := store.GetTemplate(ctx, pool, "ns", "t", "1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused template was stored: %v", err)
	}
	if _, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "ns", Name: "t", Version: "1", Definition: def, MaxDefinitionBytes: 24}); err != nil {
		t.Fatal(err)
	}
}

// A priority outside the int32 column is refused, not wrapped.
func TestCreateTasksPriorityRange(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	id, _, err := store.RegisterTemplate(ctx, pool, store.Template{Namespace: "ns", Name: "one", Version: "1", Definition: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	for _, prio := range []int{math.MinInt32 - 1, math.MaxInt32 + 1, 1 << 40} {
		_, err := store.CreateTasks(ctx, pool, time.Now(), []store.NewTask{{TaskUUID: uuid.Must(uuid.NewV7()), TemplateID: id, Namespace: "ns",
			TemplateName: "one", TemplateVersion: "1", CorrelationID: uuid.New(), Priority: prio,
			Steps: []store.NewStep{{StepUUID: uuid.Must(uuid.NewV7()), Name: "s", TemplateStepName: "s", Handler: "h", MaxAttempts: 1}}}})
		if err == nil {
			t.Errorf("priority %d accepted", prio)
		}
	}
}
