package webhook_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The Standard Webhooks reference test vector, as in the reference
// libraries' tests (libraries/go/webhook_test.go TestWebhookSign and
// libraries/python/tests/test_webhooks.py test_sign_function). It is also
// the first case of the vectors file; it is repeated here so that editing
// the file cannot drop it.
const (
	specSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTimestamp = 1614265330
	specBody      = `{"test": 2432232314}`
	specSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSpecReferenceVector(t *testing.T) {
	t.Parallel()
	s, err := webhook.NewSigner(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(specID, time.Unix(specTimestamp, 0), []byte(specBody)); got != specSignature {
		t.Fatalf("Sign = %q, want the reference %q", got, specSignature)
	}
	v, err := webhook.NewVerifier(specSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := headers(specID, strconv.Itoa(specTimestamp), specSignature)
	if err := v.VerifyAt(h, []byte(specBody), time.Unix(specTimestamp, 0)); err != nil {
		t.Fatalf("VerifyAt(reference vector) = %v", err)
	}
}

// vectorFile is contracts/testdata/webhook-vectors.json; see the README
// next to it.
type vectorFile struct {
	Description      string   `json:"description"`
	ToleranceSeconds int      `json:"tolerance_seconds"`
	Cases            []vector `json:"cases"`
}

type vector struct {
	Name            string   `json:"name"`
	Description     string   `json:"description"`
	Secrets         []string `json:"secrets"`
	ID              string   `json:"id"`
	Timestamp       string   `json:"timestamp"`
	Now             int64    `json:"now"`
	Body            string   `json:"body"`
	SignatureHeader string   `json:"signature_header"`
	Valid           bool     `json:"valid"`
	Error           string   `json:"error"`
	SignedBySecrets bool     `json:"signed_by_secrets"`
}

// errorCodes maps the vectors' error codes to the package's errors.
var errorCodes = map[string]error{
	"invalid_secret":    webhook.ErrInvalidSecret,
	"missing_headers":   webhook.ErrMissingHeaders,
	"invalid_timestamp": webhook.ErrInvalidTimestamp,
	"timestamp_too_old": webhook.ErrTimestampTooOld,
	"timestamp_too_new": webhook.ErrTimestampTooNew,
	"invalid_signature": webhook.ErrInvalidSignature,
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	raw, err := os.ReadFile("../testdata/webhook-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f vectorFile
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("webhook-vectors.json: %v", err)
	}
	return f
}

// TestVectors checks every case of contracts/testdata/webhook-vectors.json,
// so the file the other languages' examples use cannot drift from this code.
func TestVectors(t *testing.T) {
	t.Parallel()
	f := loadVectors(t)
	if f.ToleranceSeconds != int(webhook.DefaultTolerance/time.Second) {
		t.Errorf("tolerance_seconds = %d, want the default %d", f.ToleranceSeconds, int(webhook.DefaultTolerance/time.Second))
	}
	seenNames := map[string]bool{}
	seenCodes := map[string]bool{}
	for _, c := range f.Cases {
		if c.Name == "" || seenNames[c.Name] {
			t.Errorf("case %q: empty or duplicate name", c.Name)
		}
		seenNames[c.Name] = true
		seenCodes[c.Error] = true
		if c.Description == "" {
			t.Errorf("case %q: no description", c.Name)
		}
		if c.Valid != (c.Error == "") {
			t.Errorf("case %q: valid=%v but error=%q", c.Name, c.Valid, c.Error)
		}
		if _, ok := errorCodes[c.Error]; !ok && c.Error != "" {
			t.Errorf("case %q: unknown error code %q", c.Name, c.Error)
		}
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			checkVector(t, c, time.Duration(f.ToleranceSeconds)*time.Second)
		})
	}
	// The file must keep covering these; see the README.
	for _, name := range []string{
		"spec_reference_signature", "valid_single_secret", "rotation_second_signature_matches",
		"tampered_body", "wrong_secret", "stale_timestamp", "future_timestamp", "missing_signature_header",
		"malformed_signature_no_version", "unknown_version_prefix", "non_whsec_secret",
	} {
		if !seenNames[name] {
			t.Errorf("vectors file lacks case %q", name)
		}
	}
	for code := range errorCodes {
		if !seenCodes[code] {
			t.Errorf("no case expects error %q", code)
		}
	}
}

func checkVector(t *testing.T, c vector, tolerance time.Duration) {
	want := errorCodes[c.Error] // nil for a valid case
	v, err := webhook.NewVerifier(c.Secrets...)
	_, signErr := webhook.NewSigner(c.Secrets...)
	if (err == nil) != (signErr == nil) {
		t.Fatalf("NewVerifier = %v but NewSigner = %v", err, signErr)
	}
	if err != nil {
		if !errors.Is(err, want) || want == nil {
			t.Fatalf("NewVerifier = %v, want %v", err, want)
		}
		for _, s := range c.Secrets {
			if strings.Contains(err.Error(), strings.TrimPrefix(s, webhook.SecretPrefix)) {
				t.Fatalf("error %q quotes the secret", err)
			}
		}
		return
	}
	if want == webhook.ErrInvalidSecret {
		t.Fatalf("NewVerifier accepted secrets, want %v", want)
	}
	v.Tolerance = tolerance
	h := headers(c.ID, c.Timestamp, c.SignatureHeader)
	err = v.VerifyAt(h, []byte(c.Body), time.Unix(c.Now, 0))
	switch {
	case want == nil && err != nil:
		t.Fatalf("VerifyAt = %v, want nil", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("VerifyAt = %v, want %v", err, want)
	}
	if c.SignedBySecrets {
		ts, err := strconv.ParseInt(c.Timestamp, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		s, err := webhook.NewSigner(c.Secrets...)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Sign(c.ID, time.Unix(ts, 0), []byte(c.Body)); got != c.SignatureHeader {
			t.Fatalf("Sign = %q, want %q", got, c.SignatureHeader)
		}
	}
}

// headers builds request headers; an empty value leaves the header out.
func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	for name, v := range map[string]string{webhook.HeaderID: id, webhook.HeaderTimestamp: ts, webhook.HeaderSignature: sig} {
		if v != "" {
			h.Set(name, v)
		}
	}
	return h
}

var v1Entry = regexp.MustCompile(`^v1,[A-Za-z0-9+/]{43}=$`)

func TestSignerOutputVerifies(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	s, err := webhook.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := webhook.NewVerifier(secret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"event_id":"e1","step":{"attempts":1}}`)
	now := time.Now()
	req, err := http.NewRequest(http.MethodPost, "http://handler.test/run", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	s.SignRequest(req, "e1", now, body)
	if got := req.Header.Get("Webhook-Id"); got != "e1" {
		t.Errorf("webhook-id = %q", got)
	}
	if got, want := req.Header.Get("Webhook-Timestamp"), strconv.FormatInt(now.Unix(), 10); got != want {
		t.Errorf("webhook-timestamp = %q, want %q", got, want)
	}
	if sig := req.Header.Get(webhook.HeaderSignature); !v1Entry.MatchString(sig) {
		t.Errorf("webhook-signature = %q, want one v1 entry", sig)
	}
	if err := v.Verify(req.Header, body); err != nil {
		t.Fatalf("Verify(signed request) = %v", err)
	}
	// Empty bodies sign and verify too.
	h := http.Header{}
	s.SetHeaders(h, "e2", now, nil)
	if err := v.Verify(h, []byte{}); err != nil {
		t.Fatalf("Verify(empty body) = %v", err)
	}
}

func TestVerifierRejects(t *testing.T) {
	t.Parallel()
	secret, other := webhook.NewSecret(), webhook.NewSecret()
	signer := mustSigner(t, secret)
	verifier := mustVerifier(t, secret)
	now := time.Unix(1767225600, 0)
	body := []byte(`{"amount":100}`)
	signed := func(id string, ts time.Time, s *webhook.Signer) http.Header {
		h := http.Header{}
		s.SetHeaders(h, id, ts, body)
		return h
	}
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		want   error
	}{
		{"tampered body", signed("e", now, signer), []byte(`{"amount":900}`), webhook.ErrInvalidSignature},
		{"truncated body", signed("e", now, signer), body[:len(body)-1], webhook.ErrInvalidSignature},
		{"wrong secret", signed("e", now, mustSigner(t, other)), body, webhook.ErrInvalidSignature},
		{"stale timestamp", signed("e", now.Add(-webhook.DefaultTolerance-time.Second), signer), body, webhook.ErrTimestampTooOld},
		{"future timestamp", signed("e", now.Add(webhook.DefaultTolerance+time.Second), signer), body, webhook.ErrTimestampTooNew},
		{"no headers", http.Header{}, body, webhook.ErrMissingHeaders},
		{"empty signature", headers("e", strconv.FormatInt(now.Unix(), 10), ""), body, webhook.ErrMissingHeaders},
		{"signed timestamp in the past replayed with a fresh one", func() http.Header {
			h := signed("e", now.Add(-time.Hour), signer)
			h.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
			return h
		}(), body, webhook.ErrInvalidSignature},
		{"plus sign", headers("e", "+1767225600", "v1,x"), body, webhook.ErrInvalidTimestamp},
		{"negative", headers("e", "-1", "v1,x"), body, webhook.ErrInvalidTimestamp},
		{"fraction", headers("e", "1767225600.5", "v1,x"), body, webhook.ErrInvalidTimestamp},
		{"19 digits", headers("e", "9223372036854775807", "v1,x"), body, webhook.ErrInvalidTimestamp},
		{"18 digits", headers("e", "999999999999999999", "v1,x"), body, webhook.ErrTimestampTooNew},
		{"zero", headers("e", "0", "v1,x"), body, webhook.ErrTimestampTooOld},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := verifier.VerifyAt(tt.header, tt.body, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("VerifyAt = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMissingHeadersAreNamed(t *testing.T) {
	t.Parallel()
	v := mustVerifier(t, webhook.NewSecret())
	err := v.Verify(headers("e", "", ""), nil)
	if !errors.Is(err, webhook.ErrMissingHeaders) {
		t.Fatalf("Verify = %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "webhook-timestamp, webhook-signature") || strings.Contains(msg, "webhook-id") {
		t.Fatalf("error %q should name exactly the missing headers", msg)
	}
}

func TestLowerCaseHeaderKeys(t *testing.T) {
	t.Parallel()
	// A header map built by hand (e.g. from a serverless event) may have
	// lower-case keys that http.Header.Get does not find.
	h := http.Header{
		"webhook-id":        {specID},
		"webhook-timestamp": {strconv.Itoa(specTimestamp)},
		"webhook-signature": {specSignature},
	}
	if err := mustVerifier(t, specSecret).VerifyAt(h, []byte(specBody), time.Unix(specTimestamp, 0)); err != nil {
		t.Fatalf("VerifyAt = %v", err)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	newSecret, oldSecret, otherSecret := webhook.NewSecret(), webhook.NewSecret(), webhook.NewSecret()
	body := []byte(`{"step":"charge"}`)
	now := time.Now()

	// The runner signs with both secrets, newest first.
	both := http.Header{}
	mustSigner(t, newSecret, oldSecret).SetHeaders(both, "e", now, body)
	entries := strings.Split(both.Get(webhook.HeaderSignature), " ")
	if len(entries) != 2 || !v1Entry.MatchString(entries[0]) || !v1Entry.MatchString(entries[1]) {
		t.Fatalf("webhook-signature = %q, want two v1 entries", both.Get(webhook.HeaderSignature))
	}
	onlyNew := http.Header{}
	mustSigner(t, newSecret).SetHeaders(onlyNew, "e", now, body)
	if entries[0] != onlyNew.Get(webhook.HeaderSignature) {
		t.Errorf("first entry %q is not the newest secret's signature %q", entries[0], onlyNew.Get(webhook.HeaderSignature))
	}
	onlyOld := http.Header{}
	mustSigner(t, oldSecret).SetHeaders(onlyOld, "e", now, body)

	tests := []struct {
		name     string
		verifier []string
		header   http.Header
		ok       bool
	}{
		{"handler still on the old secret (second signature matches)", []string{oldSecret}, both, true},
		{"handler already on the new secret", []string{newSecret}, both, true},
		{"handler holding both, runner on the old secret", []string{newSecret, oldSecret}, onlyOld, true},
		{"handler holding both, runner on the new secret", []string{oldSecret, newSecret}, onlyNew, true},
		{"handler on the old secret after the runner dropped it", []string{oldSecret}, onlyNew, false},
		{"unrelated secret", []string{otherSecret}, both, false},
	}
	for _, tt := range tests {
		err := mustVerifier(t, tt.verifier...).VerifyAt(tt.header, body, now)
		if (err == nil) != tt.ok {
			t.Errorf("%s: VerifyAt = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, webhook.ErrInvalidSignature) {
			t.Errorf("%s: VerifyAt = %v, want ErrInvalidSignature", tt.name, err)
		}
	}
}

func TestTolerance(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	sent := time.Unix(1767225600, 0)
	h := http.Header{}
	mustSigner(t, secret).SetHeaders(h, "e", sent, nil)

	v := mustVerifier(t, secret)
	for _, tt := range []struct {
		tolerance time.Duration
		now       time.Time
		want      error
	}{
		{0, sent.Add(webhook.DefaultTolerance), nil},
		{0, sent.Add(-webhook.DefaultTolerance), nil},
		{0, sent.Add(webhook.DefaultTolerance + time.Nanosecond), webhook.ErrTimestampTooOld},
		{0, sent.Add(-webhook.DefaultTolerance - time.Nanosecond), webhook.ErrTimestampTooNew},
		{-time.Second, sent.Add(4 * time.Minute), nil}, // negative means the default
		{10 * time.Second, sent.Add(10 * time.Second), nil},
		{10 * time.Second, sent.Add(11 * time.Second), webhook.ErrTimestampTooOld},
		{10 * time.Second, sent.Add(-11 * time.Second), webhook.ErrTimestampTooNew},
		{time.Hour, sent.Add(59 * time.Minute), nil},
	} {
		v.Tolerance = tt.tolerance
		if err := v.VerifyAt(h, nil, tt.now); !errors.Is(err, tt.want) {
			t.Errorf("tolerance %s, now = sent%+v: VerifyAt = %v, want %v", tt.tolerance, tt.now.Sub(sent), err, tt.want)
		}
	}
}

func TestSecrets(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString
	bad := []struct {
		name, secret, msg string
	}{
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `does not start with "whsec_"`},
		{"other prefix", "whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `does not start with "whsec_"`},
		{"empty", "", "does not start"},
		{"prefix only", "whsec_", "decodes to 0 bytes"},
		{"not base64", "whsec_not-base64-at-all!", `is not "whsec_" followed by standard base64`},
		{"url-safe alphabet", "whsec_" + strings.ReplaceAll(b64(bytes.Repeat([]byte{0xfb}, 24)), "+", "-"), `is not "whsec_" followed by standard base64`},
		{"missing padding", "whsec_" + strings.TrimRight(b64(make([]byte, 31)), "="), `is not "whsec_" followed by standard base64`},
		{"23 bytes", "whsec_" + b64(make([]byte, 23)), "decodes to 23 bytes, want 24 to 64"},
		{"65 bytes", "whsec_" + b64(make([]byte, 65)), "decodes to 65 bytes, want 24 to 64"},
	}
	for _, tt := range bad {
		for _, ctor := range []func(...string) error{
			func(s ...string) error { _, err := webhook.NewVerifier(s...); return err },
			func(s ...string) error { _, err := webhook.NewSigner(s...); return err },
		} {
			err := ctor(specSecret, tt.secret)
			if !errors.Is(err, webhook.ErrInvalidSecret) || !strings.Contains(err.Error(), "secret 2 "+tt.msg) {
				t.Errorf("%s: err = %v, want ErrInvalidSecret about secret 2 with %q", tt.name, err, tt.msg)
			}
		}
	}
	if _, err := webhook.NewVerifier(); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("NewVerifier() = %v, want ErrInvalidSecret", err)
	}
	if _, err := webhook.NewSigner(); !errors.Is(err, webhook.ErrInvalidSecret) {
		t.Errorf("NewSigner() = %v, want ErrInvalidSecret", err)
	}
	for _, n := range []int{24, 32, 64} {
		if _, err := webhook.NewVerifier("whsec_" + b64(make([]byte, n))); err != nil {
			t.Errorf("%d-byte secret: %v", n, err)
		}
	}
	a, b := webhook.NewSecret(), webhook.NewSecret()
	if a == b || !strings.HasPrefix(a, webhook.SecretPrefix) {
		t.Errorf("NewSecret = %q, %q", a, b)
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, webhook.SecretPrefix)); err != nil || len(key) != 32 {
		t.Errorf("NewSecret key: %d bytes, %v", len(key), err)
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	s, v := mustSigner(t, secret), mustVerifier(t, secret)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				body := []byte(strconv.Itoa(i*1000 + j))
				h := http.Header{}
				s.SetHeaders(h, "e"+string(body), time.Now(), body)
				if err := v.Verify(h, body); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func mustSigner(t *testing.T, secrets ...string) *webhook.Signer {
	t.Helper()
	s, err := webhook.NewSigner(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustVerifier(t *testing.T, secrets ...string) *webhook.Verifier {
	t.Helper()
	v, err := webhook.NewVerifier(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
