package openapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi"
)

// /v1/status shows an endpoint URL as it was registered: the {callable}
// placeholder unescaped (not %7Bcallable%7D), without credentials or query
// values.
func TestStatusShowsEndpointURLsUnescaped(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{runner: true})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(srv.Close)
	registered := strings.Replace(srv.URL, "http://", "http://user:hunter2@", 1) + "/steps/{callable}/run?token=s3cret"
	e.do(http.MethodPut, "/v1/handlers/mail.*", map[string]any{"url": registered}, http.StatusCreated, nil)
	waitFor(t, 20*time.Second, "the runner to load the endpoint", func() bool {
		for _, ep := range e.reg.Endpoints() {
			if ep.Pattern == "mail.*" {
				return true
			}
		}
		return false
	})

	var status openapi.StatusBody
	e.do(http.MethodGet, "/v1/status", nil, http.StatusOK, &status)
	want := srv.URL + "/steps/{callable}/run?..."
	found := false
	for _, ep := range status.Endpoints {
		if ep.Pattern != "mail.*" {
			continue
		}
		found = true
		if ep.URL != want {
			t.Errorf("/v1/status endpoint url = %q, want %q", ep.URL, want)
		}
	}
	if !found {
		t.Fatalf("/v1/status lists no mail.*: %+v", status.Endpoints)
	}
	body := string(mustGet(t, e, "/v1/status"))
	for _, leak := range []string{"%7B", "%7D", "hunter2", "s3cret"} {
		if strings.Contains(body, leak) {
			t.Errorf("/v1/status shows %q: %s", leak, body)
		}
	}
}
