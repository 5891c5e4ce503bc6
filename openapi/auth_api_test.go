package openapi_test

import (
	"cmp"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Auth in front of the real operations on a real database, wired as
// serve.go wires it: refusals are problems and write nothing; valid
// credentials reach the operation; health, metrics and the spec stay public.
func TestAuthOnTheRealAPI(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{auth: newAuth(t, nil)})
	hs := []byte(hsSecret)
	bearer := func(cred string) []string { return []string{"Authorization", "Bearer " + cred} }
	jwt := func(scope string, edit map[string]any) []string {
		return bearer(signHS256(t, hs, claims(scope, edit)))
	}
	templates := func() int {
		var n int
		if err := e.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM tasker.templates WHERE namespace = 'shop' AND name = 'order'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	register := map[string]string{"template": orderTemplate}

	for _, c := range []struct {
		name   string
		method string // default GET
		path   string
		header []string
		want   int
		text   string // in the body of a 2xx, in the detail of a problem
	}{
		{name: "no credential", path: "/v1/status", want: 401, text: "credentials required"},
		{name: "wrong key", path: "/v1/status", header: bearer("wrong-key-0123456789abcdef"), want: 401, text: "API key not accepted"},
		{name: "expired JWT", path: "/v1/status", header: jwt("admin", map[string]any{"exp": authNow.Add(-time.Hour).Unix()}), want: 401, text: "token expired"},
		{name: "JWT for another audience", path: "/v1/status", header: jwt("admin", map[string]any{"aud": "another-service"}), want: 401, text: `audience "another-service" not accepted`},
		{name: "read key as bearer", path: "/v1/status", header: bearer(readKey), want: 200, text: `"version":"test"`},
		{name: "read key as X-API-Key", path: "/v1/status", header: []string{"X-API-Key", readKey}, want: 200, text: `"version":"test"`},
		{name: "admin JWT", path: "/v1/status", header: jwt("admin", nil), want: 200, text: `"version":"test"`},
		{name: "no credential writes", method: "POST", path: "/v1/templates", want: 401, text: "credentials required"},
		{name: "read key writes", method: "POST", path: "/v1/templates", header: bearer(readKey), want: 403, text: `API key "reader" has scope "read"`},
		{name: "read JWT writes", method: "POST", path: "/v1/templates", header: jwt("read", nil), want: 403, text: `token of "alice" has scope "read"`},
		{name: "admin key writes", method: "POST", path: "/v1/templates", header: bearer(adminKey), want: 201, text: `"name":"order"`},
		{name: "health public", path: "/health", want: 200, text: `"status":"healthy"`},
		{name: "health ready public", path: "/health/ready", want: 200, text: `"status":"healthy"`},
		{name: "metrics public", path: "/metrics", want: 200, text: "tasker_"},
		{name: "spec public", path: "/openapi.json", want: 200, text: `"/v1/status"`},
	} {
		method := cmp.Or(c.method, http.MethodGet)
		var body any
		if method == http.MethodPost {
			body = register
		}
		before := templates()
		code, h, b := e.call(method, c.path, body, c.header...)
		if code != c.want {
			t.Fatalf("%s: %s %s = %d, want %d: %s", c.name, method, c.path, code, c.want, b)
		}
		if code >= 400 {
			checkProblem(t, &http.Response{Header: h}, b, c.want, c.text)
		} else if !strings.Contains(string(b), c.text) {
			t.Fatalf("%s: body lacks %s: %s", c.name, c.text, b)
		}
		if method == http.MethodPost {
			want := before
			if code < 300 {
				want++
			}
			if after := templates(); after != want {
				t.Fatalf("%s: %d order templates after, want %d", c.name, after, want)
			}
		}
	}
}
