package webhook_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// A handler service verifies the runner's requests with [webhook.Middleware].
// The runner's side is played here by a [webhook.Signer].
func Example() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" // from the endpoint's configuration

	verifier, err := webhook.NewVerifier(secret)
	if err != nil {
		panic(err)
	}
	handler := webhook.Middleware(verifier, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // the verified body
		fmt.Fprintf(w, "handled %s", body)
	}))

	// The runner signs each call with the step envelope's event_id.
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		panic(err)
	}
	body := []byte(`{"event_id":"evt_1"}`)
	req := httptest.NewRequest(http.MethodPost, "/steps/payments.charge", bytes.NewReader(body))
	signer.SignRequest(req, "evt_1", time.Now(), body)
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body)

	// The same headers with another body are rejected before the handler runs.
	forged := httptest.NewRequest(http.MethodPost, "/steps/payments.charge", bytes.NewReader([]byte(`{"event_id":"evt_2"}`)))
	forged.Header = req.Header.Clone()
	rec = httptest.NewRecorder()
	handler.ServeHTTP(rec, forged)
	fmt.Print(rec.Code, " ", rec.Body)
	// Output:
	// 200 handled {"event_id":"evt_1"}
	// 401 {"type":"about:blank","title":"Unauthorized","status":401,"detail":"webhook: invalid signature"}
}

// Without the middleware, verify the raw body before parsing it.
func ExampleVerifier_Verify() {
	verifier, err := webhook.NewVerifier("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	verifier.Tolerance = time.Minute // default 5 minutes

	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)

	signedAt := time.Unix(1614265330, 0)
	fmt.Println(verifier.VerifyAt(h, body, signedAt.Add(30*time.Second)))
	err = verifier.VerifyAt(h, body, signedAt.Add(2*time.Minute))
	fmt.Println(errors.Is(err, webhook.ErrTimestampTooOld))
	// Real handlers call Verify, which reads the clock.
	fmt.Println(errors.Is(verifier.Verify(h, body), webhook.ErrTimestampTooOld))
	// Output:
	// <nil>
	// true
	// true
}

// The Standard Webhooks reference vector.
func ExampleSigner_Sign() {
	signer, err := webhook.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	fmt.Println(signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}

// During a rotation the runner holds the new and the old secret and sends
// both signatures, newest first.
func ExampleNewSigner_rotation() {
	signer, err := webhook.NewSigner(webhook.NewSecret(), webhook.NewSecret())
	if err != nil {
		panic(err)
	}
	h := http.Header{}
	signer.SetHeaders(h, "evt_1", time.Now(), []byte(`{}`))
	fmt.Println(len(bytes.Fields([]byte(h.Get("webhook-signature")))))
	// Output: 2
}
