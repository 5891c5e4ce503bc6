package openapi_test

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/google/uuid"
)

// GET /v1/tasks?correlation_id= lists the tasks of one correlation id,
// with the other filters and across pages; a malformed one is a 422 naming
// query.correlation_id.
func TestListTasksByCorrelationID(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{})
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	type listed struct {
		TaskUUID      string `json:"task_uuid"`
		CorrelationID string `json:"correlation_id"`
	}
	corrA, corrB := uuid.NewString(), uuid.NewString()
	submit := func(corr string, order int) string {
		t.Helper()
		var task listed
		e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": order}, "correlation_id": corr}, http.StatusCreated, &task)
		if task.CorrelationID != corr {
			t.Fatalf("submitted with correlation_id %s, got %s", corr, task.CorrelationID)
		}
		return task.TaskUUID
	}
	a1 := submit(corrA, 1)
	b := submit(corrB, 2)
	a2 := submit(corrA, 3)
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": 4}}, http.StatusCreated, nil)

	list := func(query string) []string {
		t.Helper()
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for range 10 {
			var page apiPage[listed]
			e.do(http.MethodGet, "/v1/tasks?"+q.Encode(), nil, http.StatusOK, &page)
			for _, it := range page.Items {
				ids = append(ids, it.TaskUUID)
			}
			if page.NextCursor == "" {
				return ids
			}
			q.Set("cursor", page.NextCursor)
		}
		t.Fatalf("listing %s: more than 10 pages", query)
		return nil
	}
	if got, want := list("correlation_id="+corrA), []string{a2, a1}; !slices.Equal(got, want) {
		t.Errorf("correlation_id %s: %v, want %v", corrA, got, want)
	}
	if got, want := list("correlation_id="+corrA+"&limit=1"), []string{a2, a1}; !slices.Equal(got, want) {
		t.Errorf("correlation_id %s in pages of 1: %v, want %v", corrA, got, want)
	}
	if got, want := list("correlation_id="+corrB+"&namespace=shop&state=pending,steps_in_process"), []string{b}; !slices.Equal(got, want) {
		t.Errorf("correlation_id %s with other filters: %v, want %v", corrB, got, want)
	}
	if got := list("correlation_id=" + corrB + "&namespace=mail"); len(got) != 0 {
		t.Errorf("correlation_id %s in another namespace: %v", corrB, got)
	}
	if got := list("correlation_id=" + uuid.NewString()); len(got) != 0 {
		t.Errorf("an unknown correlation_id: %v", got)
	}
	if got := list(""); len(got) != 4 {
		t.Errorf("no filter: %d tasks, want 4", len(got))
	}

	for _, bad := range []string{"nope", "0190a5a0-0000-7000-8000", uuid.NewString() + "0"} {
		p := e.problem(http.MethodGet, "/v1/tasks?correlation_id="+bad, nil, http.StatusUnprocessableEntity)
		if !slices.Contains(p.locations(), "query.correlation_id") {
			t.Errorf("correlation_id=%s: problem %s does not name query.correlation_id", bad, p)
		}
	}
}
