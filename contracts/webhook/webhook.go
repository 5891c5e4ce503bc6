// Package webhook signs and verifies HTTP requests the Standard Webhooks way
// (https://www.standardwebhooks.com), as tasker-runner does for handler
// callouts to an endpoint configured with a secret.
//
// A signed request carries three headers: [HeaderID] (the step envelope's
// event_id), [HeaderTimestamp] (unix seconds) and [HeaderSignature], a
// space-separated list of "v1,<base64 HMAC-SHA256>" entries, one per secret,
// each computed over "<id>.<timestamp>.<body>". Secrets are "whsec_"
// followed by the standard base64 of 24 to 64 random bytes ([NewSecret]
// makes one).
//
// Handler authors wrap their handler in [Middleware], or call
// [Verifier.Verify] with the raw body before parsing it. The runner signs
// with a [Signer]. During a key rotation the runner is given the new and the
// old secret and sends both signatures; a [Verifier] accepts a request when
// any signature matches any of its secrets, so the runner and the handlers
// can switch secrets one after the other without downtime.
//
// The package uses the standard library only, so a handler service can copy
// or import it without pulling in the rest of tasker-runner. The test vectors
// in contracts/testdata/webhook-vectors.json pin its behaviour, and the same
// file checks the example handlers in other languages.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a signed request. On the wire header names are
// case-insensitive; net/http canonicalizes them ("Webhook-Id").
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Secret format and limits.
const (
	// SecretPrefix starts every secret; standard base64 of the key follows.
	SecretPrefix = "whsec_"
	// MinSecretBytes and MaxSecretBytes bound the decoded key length.
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// Defaults of a [Verifier].
const (
	// DefaultTolerance is the largest accepted distance between
	// [HeaderTimestamp] and the verifier's clock, in either direction.
	DefaultTolerance = 5 * time.Minute
	// DefaultMaxBodyBytes is the largest body [Middleware] reads.
	DefaultMaxBodyBytes = 1 << 20
)

// Errors returned by [NewSigner], [NewVerifier] and [Verifier.Verify]. The
// returned errors wrap these with details; test them with [errors.Is].
var (
	// ErrInvalidSecret: a secret is not "whsec_" and the standard base64 of
	// 24 to 64 bytes, or no secret was given.
	ErrInvalidSecret = errors.New("webhook: invalid secret")
	// ErrMissingHeaders: a request lacks webhook-id, webhook-timestamp or
	// webhook-signature (or one of them is empty).
	ErrMissingHeaders = errors.New("webhook: missing header")
	// ErrInvalidTimestamp: webhook-timestamp is not unix seconds in ASCII
	// decimal digits.
	ErrInvalidTimestamp = errors.New("webhook: invalid timestamp")
	// ErrTimestampTooOld: the request was signed longer ago than the
	// tolerance; it may be a replay.
	ErrTimestampTooOld = errors.New("webhook: timestamp too old")
	// ErrTimestampTooNew: the request claims to be signed further in the
	// future than the tolerance.
	ErrTimestampTooNew = errors.New("webhook: timestamp too new")
	// ErrInvalidSignature: no "v1" entry of webhook-signature matches the
	// request under any of the verifier's secrets. Malformed entries and
	// entries of other versions are skipped, so they end here too.
	ErrInvalidSignature = errors.New("webhook: invalid signature")
)

// NewSecret returns a new random secret of 32 bytes in "whsec_" form.
func NewSecret() string {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails; it crashes the program instead.
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// parseSecrets decodes secrets into HMAC keys, in order. The error never
// quotes a secret.
func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret given", ErrInvalidSecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		b64, ok := strings.CutPrefix(s, SecretPrefix)
		if !ok {
			return nil, fmt.Errorf("%w: secret %d does not start with %q", ErrInvalidSecret, i+1, SecretPrefix)
		}
		key, err := base64.StdEncoding.Strict().DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("%w: secret %d is not %q followed by standard base64", ErrInvalidSecret, i+1, SecretPrefix)
		}
		if n := len(key); n < MinSecretBytes || n > MaxSecretBytes {
			return nil, fmt.Errorf("%w: secret %d decodes to %d bytes, want %d to %d",
				ErrInvalidSecret, i+1, n, MinSecretBytes, MaxSecretBytes)
		}
		keys[i] = key
	}
	return keys, nil
}

var dot = []byte{'.'}

// signature computes HMAC-SHA256(key, "<id>.<ts>.<body>") into buf.
func signature(mac hash.Hash, id, ts string, body []byte, buf []byte) []byte {
	mac.Reset()
	_, _ = io.WriteString(mac, id)
	_, _ = mac.Write(dot)
	_, _ = io.WriteString(mac, ts)
	_, _ = mac.Write(dot)
	_, _ = mac.Write(body)
	return mac.Sum(buf)
}

// Signer computes webhook-signature values with one or more secrets. It is
// safe for concurrent use.
type Signer struct {
	keys [][]byte
}

// NewSigner returns a [Signer] for secrets, newest first: during a
// rotation pass the new secret and then the old one. It fails with
// [ErrInvalidSecret] when a secret is malformed or none is given.
func NewSigner(secrets ...string) (*Signer, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{keys: keys}, nil
}

// Sign returns the webhook-signature header value for a request with
// webhook-id id, sent at ts (whole unix seconds) with body: one
// "v1,<base64>" entry per secret, in the order given to [NewSigner],
// separated by spaces. id should not contain '.' or whitespace.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	return s.sign(id, strconv.FormatInt(ts.Unix(), 10), body)
}

func (s *Signer) sign(id, ts string, body []byte) string {
	const entry = len("v1,") + (sha256.Size+2)/3*4
	var b strings.Builder
	b.Grow(len(s.keys) * (entry + 1))
	var buf [sha256.Size]byte
	for i, key := range s.keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		sum := signature(hmac.New(sha256.New, key), id, ts, body, buf[:0])
		b.WriteString(base64.StdEncoding.EncodeToString(sum))
	}
	return b.String()
}

// SetHeaders sets [HeaderID], [HeaderTimestamp] and [HeaderSignature] on h
// for a request with body.
func (s *Signer) SetHeaders(h http.Header, id string, ts time.Time, body []byte) {
	unix := strconv.FormatInt(ts.Unix(), 10)
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, unix)
	h.Set(HeaderSignature, s.sign(id, unix, body))
}

// SignRequest sets the three signing headers on req, whose body must be
// body; see [Signer.SetHeaders].
func (s *Signer) SignRequest(req *http.Request, id string, ts time.Time, body []byte) {
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	s.SetHeaders(req.Header, id, ts, body)
}

// Verifier checks signed requests against one or more secrets. Set its
// fields before first use; it is then safe for concurrent use.
type Verifier struct {
	// Tolerance is the largest accepted distance between the request's
	// webhook-timestamp and the clock, in either direction; older or newer
	// requests are rejected to stop replays. Zero or less means
	// [DefaultTolerance].
	Tolerance time.Duration
	// MaxBodyBytes limits the body [Middleware] reads; a larger body gets
	// 413. Zero or less means [DefaultMaxBodyBytes].
	MaxBodyBytes int64

	keys [][]byte
}

// NewVerifier returns a [Verifier] accepting requests signed with any of
// secrets. It fails with [ErrInvalidSecret] when a secret is malformed or
// none is given.
func NewVerifier(secrets ...string) (*Verifier, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{keys: keys}, nil
}

func (v *Verifier) tolerance() time.Duration {
	if v.Tolerance <= 0 {
		return DefaultTolerance
	}
	return v.Tolerance
}

func (v *Verifier) maxBodyBytes() int64 {
	if v.MaxBodyBytes <= 0 {
		return DefaultMaxBodyBytes
	}
	return v.MaxBodyBytes
}

// Verify checks a request's signing headers against its raw body (the
// exact bytes received, before any JSON parsing) at the current time. See
// [Verifier.VerifyAt].
func (v *Verifier) Verify(header http.Header, body []byte) error {
	return v.VerifyAt(header, body, time.Now())
}

// VerifyAt is [Verifier.Verify] with the clock reading now. It returns nil
// when the request is authentic, or an error wrapping [ErrMissingHeaders],
// [ErrInvalidTimestamp], [ErrTimestampTooOld], [ErrTimestampTooNew] or
// [ErrInvalidSignature], checked in that order. Signatures are compared in
// constant time.
func (v *Verifier) VerifyAt(header http.Header, body []byte, now time.Time) error {
	id, ts, sigs, err := signingHeaders(header)
	if err != nil {
		return err
	}
	if err := v.checkTimestamp(ts, now); err != nil {
		return err
	}
	want := make([][]byte, len(v.keys))
	for i, key := range v.keys {
		want[i] = signature(hmac.New(sha256.New, key), id, ts, body, nil)
	}
	var got [sha256.Size]byte
	for entry := range strings.FieldsSeq(sigs) {
		version, b64, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" || base64.StdEncoding.EncodedLen(sha256.Size) != len(b64) {
			continue // another scheme (v1a, a future version) or not a signature
		}
		if n, err := base64.StdEncoding.Decode(got[:], []byte(b64)); err != nil || n != sha256.Size {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got[:], w) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}

// signingHeaders returns the three signing headers, or an error naming the
// missing ones. It also finds non-canonical (lower-case) keys, as in a
// header map built by hand from another framework's request.
func signingHeaders(h http.Header) (id, ts, sigs string, err error) {
	get := func(name string) string {
		if v := h.Get(name); v != "" {
			return v
		}
		if vs := h[name]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	id, ts, sigs = get(HeaderID), get(HeaderTimestamp), get(HeaderSignature)
	var missing []string
	for _, p := range [...]struct{ name, value string }{{HeaderID, id}, {HeaderTimestamp, ts}, {HeaderSignature, sigs}} {
		if p.value == "" {
			missing = append(missing, p.name)
		}
	}
	if missing != nil {
		return "", "", "", fmt.Errorf("%w: %s", ErrMissingHeaders, strings.Join(missing, ", "))
	}
	return id, ts, sigs, nil
}

// checkTimestamp accepts ts when now-tolerance <= ts <= now+tolerance. It
// compares whole seconds so that no timestamp, however large, overflows.
func (v *Verifier) checkTimestamp(ts string, now time.Time) error {
	if len(ts) > 18 || strings.Trim(ts, "0123456789") != "" {
		return fmt.Errorf("%w: %q is not unix seconds", ErrInvalidTimestamp, truncate(ts, 32))
	}
	sent, _ := strconv.ParseInt(ts, 10, 64) // at most 18 digits: fits
	tol := v.tolerance()
	if lo := now.Add(-tol); sent < lo.Unix() || sent == lo.Unix() && lo.Nanosecond() > 0 {
		return fmt.Errorf("%w: signed at %d, more than %s before %d", ErrTimestampTooOld, sent, tol, now.Unix())
	}
	if hi := now.Add(tol); sent > hi.Unix() {
		return fmt.Errorf("%w: signed at %d, more than %s after %d", ErrTimestampTooNew, sent, tol, now.Unix())
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
