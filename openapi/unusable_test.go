package openapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
)

// An endpoint whose secret_ref this process cannot resolve (registered by
// another runner, or its secret not mounted here) is shown as unusable,
// with why, in /v1/handlers (list and get) and in /v1/status; registered
// again with a secret that resolves, it is usable again. The secret itself
// is never shown, nor which variables or files exist.
func TestUnusableEndpointShownInHandlersAndStatus(t *testing.T) {
	t.Parallel()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	e := newAPIEnv(t, envOptions{runner: true, env: map[string]string{"HOOK_SECRET": secret}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)

	// Stored as another process would (the API checks the reference
	// resolves here, and this one does not).
	if _, err := runner.NewClient(e.pool, runner.ClientConfig{}).PutEndpoint(t.Context(), runner.HandlerEndpoint{
		Namespace: "shop", Pattern: "pay.*", URL: srv.URL, Protocol: "http", SecretRef: "env:ELSEWHERE_ONLY",
	}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.do(http.MethodPut, "/v1/handlers/mail.*", map[string]any{"url": srv.URL}, http.StatusCreated, nil)
	waitFor(t, 20*time.Second, "the runner to load both endpoints", func() bool {
		n := 0
		for _, ep := range e.reg.Endpoints() {
			if ep.Pattern == "pay.*" || ep.Pattern == "mail.*" {
				n++
			}
		}
		return n == 2
	})

	var list openapi.HandlerList
	e.do(http.MethodGet, "/v1/handlers", nil, http.StatusOK, &list)
	errs := map[string]string{}
	for _, h := range list.Items {
		errs[h.Pattern] = h.Error
	}
	if !strings.Contains(errs["pay.*"], `secret_ref "env:ELSEWHERE_ONLY": cannot be resolved`) || errs["mail.*"] != "" {
		t.Errorf("/v1/handlers errors = %q, want pay.* unusable and mail.* fine", errs)
	}
	var one openapi.HandlerEndpoint
	e.do(http.MethodGet, "/v1/handlers/pay.*?namespace=shop", nil, http.StatusOK, &one)
	if one.Error != errs["pay.*"] || one.SecretRef != "env:ELSEWHERE_ONLY" {
		t.Errorf("GET /v1/handlers/pay.*: %+v", one)
	}
	var status openapi.StatusBody
	e.do(http.MethodGet, "/v1/status", nil, http.StatusOK, &status)
	found := false
	for _, ep := range status.Endpoints {
		switch ep.Pattern {
		case "pay.*":
			found = true
			if ep.Error != errs["pay.*"] || ep.Namespace != "shop" {
				t.Errorf("/v1/status endpoint %+v, want the error %q", ep, errs["pay.*"])
			}
		case "mail.*":
			if ep.Error != "" {
				t.Errorf("/v1/status: mail.* unusable: %s", ep.Error)
			}
		}
	}
	if !found {
		t.Errorf("/v1/status lists no pay.*: %+v", status.Endpoints)
	}

	// Put again with a reference this process resolves: usable.
	e.do(http.MethodPut, "/v1/handlers/pay.*?namespace=shop", map[string]any{"url": srv.URL, "secret_ref": "env:HOOK_SECRET"}, http.StatusOK, nil)
	waitFor(t, 20*time.Second, "pay.* to be usable", func() bool {
		var got openapi.HandlerEndpoint
		e.do(http.MethodGet, "/v1/handlers/pay.*?namespace=shop", nil, http.StatusOK, &got)
		return got.Error == "" && got.SecretRef == "env:HOOK_SECRET"
	})
	body := string(mustGet(t, e, "/v1/status")) + string(mustGet(t, e, "/v1/handlers"))
	if strings.Contains(body, secret) || strings.Contains(body, "ELSEWHERE_ONLY") {
		t.Errorf("a secret or a stale error shows: %s", body)
	}
}

func mustGet(t *testing.T, e *apiEnv, path string) []byte {
	t.Helper()
	code, _, b := e.call(http.MethodGet, path, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", path, code, b)
	}
	return b
}
