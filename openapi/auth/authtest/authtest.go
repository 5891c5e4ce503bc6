// Package authtest holds what the tests of the management API's
// authentication share: the test credentials, valid JWT claims, an HS256
// signer and the check of an RFC 9457 refusal with its challenge.
package authtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The test credentials.
const (
	ReadKey     = "read-key-0123456789abcdef"
	AdminKey    = "admin-key-0123456789abcdef"
	HS256Secret = "an-hs256-secret-of-at-least-32-bytes!"
	Issuer      = "https://issuer.example"
	Audience    = "tasker-runner"
)

// Now is the injected clock of every authenticator in the tests.
var Now = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// HashKey is the configured form of an API key.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Claims are valid claims (for [Issuer] and [Audience], at [Now]) with
// scope, edited by edit (a nil value deletes the claim).
func Claims(scope any, edit map[string]any) map[string]any {
	c := map[string]any{
		"iss":   Issuer,
		"aud":   Audience,
		"sub":   "alice",
		"iat":   Now.Add(-time.Minute).Unix(),
		"exp":   Now.Add(time.Hour).Unix(),
		"scope": scope,
	}
	for k, v := range edit {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// SignHS256 builds an HS256 compact JWS of claims.
func SignHS256(t testing.TB, secret []byte, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + enc(claims)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// CheckProblem checks an RFC 9457 refusal with status, a detail
// containing detail, and its Bearer challenge.
func CheckProblem(t testing.TB, resp *http.Response, body []byte, status int, detail string) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem %s: %v", body, err)
	}
	if p.Type != "about:blank" || p.Status != status || p.Title != http.StatusText(status) {
		t.Fatalf("problem %+v, want about:blank %d %s", p, status, http.StatusText(status))
	}
	if !strings.Contains(p.Detail, detail) {
		t.Fatalf("detail %q, want it to contain %q", p.Detail, detail)
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	if !strings.HasPrefix(challenge, `Bearer realm="tasker-runner"`) {
		t.Fatalf("WWW-Authenticate %q, want a Bearer challenge", challenge)
	}
	if strings.HasPrefix(p.Detail, "credentials required") && challenge != `Bearer realm="tasker-runner"` {
		t.Fatalf("WWW-Authenticate %q without a credential, want the bare challenge", challenge)
	}
	if status == http.StatusForbidden && !strings.Contains(challenge, `error="insufficient_scope"`) {
		t.Fatalf("WWW-Authenticate %q on 403, want insufficient_scope", challenge)
	}
}
