package openapi_test

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

	"github.com/tasker-runner/tasker-runner/openapi"
)

// The credentials of the API's tests with auth on. Package auth's own
// tests cover every rule (RS256, ES256, public paths, refusals); these
// only serve the API as serve.go does.

const (
	readKey  = "read-key-0123456789abcdef"
	adminKey = "admin-key-0123456789abcdef"
	hsSecret = "an-hs256-secret-of-at-least-32-bytes!"
	issuer   = "https://issuer.example"
	audience = "tasker-runner"
)

// authNow is the injected clock of every authenticator in these tests.
var authNow = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)

// hashKey is the configured form of an API key.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newAuth builds an authenticator accepting readKey, adminKey and HS256
// JWTs signed with hsSecret, edited by edit.
func newAuth(t testing.TB, edit func(*openapi.AuthConfig)) *openapi.Authenticator {
	t.Helper()
	cfg := openapi.AuthConfig{
		Enabled:       true,
		PublicHealth:  true,
		PublicMetrics: true,
		APIKeys: []openapi.APIKey{
			{Name: "reader", Hash: hashKey(readKey), Scope: openapi.ScopeRead},
			{Name: "admin", Hash: hashKey(adminKey), Scope: openapi.ScopeAdmin},
		},
		JWT: openapi.JWTConfig{
			Enabled:     true,
			Issuer:      issuer,
			Audience:    audience,
			HS256Secret: hsSecret,
			Now:         func() time.Time { return authNow },
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := openapi.NewAuthenticator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// claims are valid claims with scope, edited by edit (a nil value deletes
// the claim).
func claims(scope any, edit map[string]any) map[string]any {
	c := map[string]any{
		"iss":   issuer,
		"aud":   audience,
		"sub":   "alice",
		"iat":   authNow.Add(-time.Minute).Unix(),
		"exp":   authNow.Add(time.Hour).Unix(),
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

// signHS256 builds an HS256 compact JWS of claims.
func signHS256(t testing.TB, secret []byte, claims map[string]any) string {
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

// checkProblem checks an RFC 9457 refusal and its challenge.
func checkProblem(t *testing.T, resp *http.Response, body []byte, status int, detail string) {
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

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
