package callout_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// TestSignedCalloutVerifies sends requests signed the runner's way to a
// handler service guarded by webhook.Middleware on a loopback server: the
// verifier accepts them and rejects a tampered body, a wrong secret and a
// stale timestamp.
func TestSignedCalloutVerifies(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		handled []string
	)
	seen := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), handled...) }
	srv := httptest.NewServer(webhook.Middleware(verifier, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var env contracts.StepEnvelope
		if err := json.NewDecoder(r.Body).Decode(&env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		handled = append(handled, env.EventID)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true,"status":"completed","result":{}}`)
	})))
	t.Cleanup(srv.Close)

	env := contracts.StepEnvelope{EventID: "0190c6a2-8f1e-7c3a-9b1d-5e2f4a6b8c0d"}
	env.Step.StepUUID = "0190c6a2-0000-7000-8000-000000000002"
	env.Step.Attempts = 1
	body, err := json.Marshal(&env)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := callout.NewRequestSigner([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	call := func(t *testing.T, sent []byte, sign func(http.Header)) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/steps/payments.charge", bytes.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		sign(req.Header)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}

	if got := call(t, body, func(h http.Header) { signer.Sign(h, env.EventID, time.Now(), body) }); got != http.StatusOK {
		t.Fatalf("signed callout: status %d, want 200", got)
	}
	if got := seen(); len(got) != 1 || got[0] != env.EventID {
		t.Fatalf("handler saw %v", got)
	}

	tampered := bytes.Replace(body, []byte(`"attempts":1`), []byte(`"attempts":2`), 1)
	if bytes.Equal(tampered, body) {
		t.Fatal("test envelope lacks attempts")
	}
	wrong, err := callout.NewRequestSigner([]string{webhook.NewSecret()})
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		sent []byte
		sign func(http.Header)
	}{
		"tampered body":   {tampered, func(h http.Header) { signer.Sign(h, env.EventID, time.Now(), body) }},
		"wrong secret":    {body, func(h http.Header) { wrong.Sign(h, env.EventID, time.Now(), body) }},
		"stale timestamp": {body, func(h http.Header) { signer.Sign(h, env.EventID, time.Now().Add(-10*time.Minute), body) }},
		"unsigned":        {body, func(http.Header) {}},
	} {
		if got := call(t, tc.sent, tc.sign); got != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", name, got)
		}
	}
	if got := seen(); len(got) != 1 {
		t.Fatalf("handler ran for rejected requests: %v", got)
	}
}

func TestRequestSigner(t *testing.T) {
	t.Parallel()
	newSecret, oldSecret := webhook.NewSecret(), webhook.NewSecret()
	body := []byte(`{"event_id":"e1"}`)
	now := time.Now()

	// Rotation: both signatures, and a handler on either secret accepts.
	s, err := callout.NewRequestSigner([]string{newSecret, "", oldSecret})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	s.Sign(h, "e1", now, body)
	if n := len(strings.Fields(h.Get(webhook.HeaderSignature))); n != 2 {
		t.Fatalf("webhook-signature %q has %d entries, want 2", h.Get(webhook.HeaderSignature), n)
	}
	for _, secret := range []string{newSecret, oldSecret} {
		v, err := webhook.NewVerifier(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(h, body); err != nil {
			t.Errorf("Verify = %v", err)
		}
	}

	// No secret: a nil signer that leaves the headers alone.
	for _, secrets := range [][]string{nil, {}, {""}} {
		s, err := callout.NewRequestSigner(secrets)
		if s != nil || err != nil {
			t.Fatalf("NewRequestSigner(%q) = %v, %v; want nil, nil", secrets, s, err)
		}
		h := http.Header{}
		s.Sign(h, "e1", now, body)
		if err := callout.SignHeaders(h, secrets, "e1", now, body); err != nil || len(h) != 0 {
			t.Fatalf("unsigned endpoint got headers %v (err %v)", h, err)
		}
	}

	// A malformed secret is a clear error that does not echo it.
	const bad = "whsec_dG9vLXNob3J0"
	if _, err := callout.NewRequestSigner([]string{bad}); !errors.Is(err, webhook.ErrInvalidSecret) || strings.Contains(err.Error(), "dG9vLXNob3J0") {
		t.Fatalf("NewRequestSigner(bad) = %v", err)
	}
	if err := callout.SignHeaders(http.Header{}, []string{"not-a-secret"}, "e1", now, body); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Fatalf("SignHeaders(bad) = %v", err)
	}

	// SignHeaders matches RequestSigner.Sign.
	one, two := http.Header{}, http.Header{}
	if err := callout.SignHeaders(one, []string{newSecret}, "e2", now, body); err != nil {
		t.Fatal(err)
	}
	s, _ = callout.NewRequestSigner([]string{newSecret})
	s.Sign(two, "e2", now, body)
	for _, k := range []string{webhook.HeaderID, webhook.HeaderTimestamp, webhook.HeaderSignature} {
		if one.Get(k) == "" || one.Get(k) != two.Get(k) {
			t.Errorf("%s: %q vs %q", k, one.Get(k), two.Get(k))
		}
	}
}
