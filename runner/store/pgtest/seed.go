package pgtest

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// CancelledTask seeds a one-step task of template namespace/"seed"@"1"
// created at created and cancelled at cancelled, both possibly long ago,
// and returns its id. Its ids carry the creation time as a runner's would,
// so retention and time-ordered listings see it as that old; the runner's
// own client only makes tasks of the present. db is a migrated database
// ([URL]'s, for example).
func CancelledTask(t testing.TB, db store.DB, namespace string, created, cancelled time.Time) uuid.UUID {
	t.Helper()
	ctx := t.Context()
	tpl, _, err := store.RegisterTemplate(ctx, db, store.Template{Namespace: namespace, Name: "seed", Version: "1", Definition: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	id := UUIDv7At(created)
	if _, err := store.CreateTasks(ctx, db, created, []store.NewTask{{
		TaskUUID: id, TemplateID: tpl, Namespace: namespace, TemplateName: "seed", TemplateVersion: "1", CorrelationID: uuid.New(),
		Steps: []store.NewStep{{StepUUID: UUIDv7At(created), Name: "a", TemplateStepName: "a", Handler: "h", MaxAttempts: 1}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CancelTask(ctx, db, id, store.Manual{Now: cancelled}); err != nil {
		t.Fatal(err)
	}
	return id
}

// UUIDv7At returns a random version 7 uuid of time at, as the runner's
// client would have made at that time: seeds that must look as old as at
// (to retention, to time-ordered listings) take their ids from it. It is
// [store.UUIDv7Floor] with the random bits filled in.
func UUIDv7At(at time.Time) uuid.UUID {
	u := store.UUIDv7Floor(at)
	_, _ = rand.Read(u[6:])
	u[6], u[8] = 0x70|u[6]&0x0f, 0x80|u[8]&0x3f
	return u
}
