package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// TestMiddlewareEndToEnd sends signed and unsigned requests over a real
// loopback HTTP server to a handler wrapped in Middleware.
func TestMiddlewareEndToEnd(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	verifier := mustVerifier(t, secret)
	verifier.MaxBodyBytes = 1024

	srv, calls := echoBehindMiddleware(t, verifier)
	signer := mustSigner(t, secret)
	post := func(t *testing.T, body []byte, sign func(*http.Request)) (*http.Response, []byte) {
		t.Helper()
		return postSigned(t, srv, body, sign)
	}
	body := []byte(`{"event_id":"0190c6a2-8f1e-7c3a-9b1d-5e2f4a6b8c0d","step":{"attempts":1}}`)

	t.Run("signed request reaches the handler with its body", func(t *testing.T) {
		before := calls.Load()
		resp, out := post(t, body, func(r *http.Request) { signer.SignRequest(r, "evt-1", time.Now(), body) })
		if resp.StatusCode != http.StatusOK || !bytes.Equal(out, body) {
			t.Fatalf("status %d, body %q; want 200 echoing the request", resp.StatusCode, out)
		}
		if calls.Load() != before+1 {
			t.Fatal("handler not called")
		}
	})

	rejected := []struct {
		name   string
		body   []byte
		sign   func(*http.Request)
		status int
		detail string
	}{
		{"unsigned", body, nil, http.StatusUnauthorized, "missing header"},
		{"tampered body", []byte(strings.Replace(string(body), `"attempts":1`, `"attempts":9`, 1)),
			func(r *http.Request) { signer.SignRequest(r, "evt-2", time.Now(), body) },
			http.StatusUnauthorized, "invalid signature"},
		{"wrong secret", body,
			func(r *http.Request) { mustSigner(t, webhook.NewSecret()).SignRequest(r, "evt-3", time.Now(), body) },
			http.StatusUnauthorized, "invalid signature"},
		{"stale timestamp", body,
			func(r *http.Request) { signer.SignRequest(r, "evt-4", time.Now().Add(-time.Hour), body) },
			http.StatusUnauthorized, "timestamp too old"},
		{"oversized body", bytes.Repeat([]byte("x"), 1025),
			func(r *http.Request) {
				big := bytes.Repeat([]byte("x"), 1025)
				signer.SignRequest(r, "evt-5", time.Now(), big)
			},
			http.StatusRequestEntityTooLarge, "too large"},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			before := calls.Load()
			resp, out := post(t, tt.body, tt.sign)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, out)
			}
			checkRejection(t, resp, out, tt.status, tt.detail)
			if calls.Load() != before {
				t.Error("handler called for a rejected request")
			}
		})
	}

	t.Run("body of exactly the limit", func(t *testing.T) {
		limit := bytes.Repeat([]byte("y"), 1024)
		resp, out := post(t, limit, func(r *http.Request) { signer.SignRequest(r, "evt-6", time.Now(), limit) })
		if resp.StatusCode != http.StatusOK || !bytes.Equal(out, limit) {
			t.Fatalf("status %d, %d bytes back", resp.StatusCode, len(out))
		}
	})
}

// echoBehindMiddleware serves, behind webhook.Middleware(verifier), a
// handler that echoes the body it reads (500 if the middleware did not
// restore it whole), and counts the calls reaching it.
func echoBehindMiddleware(t *testing.T, verifier *webhook.Verifier) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	calls := new(atomic.Int64)
	srv := httptest.NewServer(webhook.Middleware(verifier, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil || int64(len(body)) != r.ContentLength {
			http.Error(w, "body not restored", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body) // echo
	})))
	t.Cleanup(srv.Close)
	return srv, calls
}

// postSigned posts body as JSON to srv, signed by sign unless nil, and
// returns the answer and its body.
func postSigned(t *testing.T, srv *httptest.Server, body []byte, sign func(*http.Request)) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/handlers/payments.charge", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if sign != nil {
		sign(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

// checkRejection checks that a refused request was answered an RFC 9457
// problem of status whose detail contains detail.
func checkRejection(t *testing.T, resp *http.Response, out []byte, status int, detail string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("problem %q: %v", out, err)
	}
	if p.Status != status || p.Title != http.StatusText(status) || p.Type != "about:blank" || !strings.Contains(p.Detail, detail) {
		t.Errorf("problem = %+v, want status %d and detail with %q", p, status, detail)
	}
}

func TestMiddlewareNeedsVerifier(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("Middleware(nil, h) did not panic")
		}
	}()
	webhook.Middleware(nil, http.NotFoundHandler())
}
