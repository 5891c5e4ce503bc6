package openapi_test

import (
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi/auth"
	"github.com/tasker-runner/tasker-runner/openapi/auth/authtest"
)

// The credentials of the API's tests with auth on. Package auth's own
// tests cover every rule (RS256, ES256, public paths, refusals); these
// only serve the API as serve.go does.

const (
	readKey  = authtest.ReadKey
	adminKey = authtest.AdminKey
	hsSecret = authtest.HS256Secret
	issuer   = authtest.Issuer
	audience = authtest.Audience
)

var (
	authNow      = authtest.Now
	hashKey      = authtest.HashKey
	claims       = authtest.Claims
	signHS256    = authtest.SignHS256
	checkProblem = authtest.CheckProblem
)

// newAuth builds an authenticator accepting readKey, adminKey and HS256
// JWTs signed with hsSecret, edited by edit.
func newAuth(t testing.TB, edit func(*auth.Config)) *auth.Authenticator {
	t.Helper()
	cfg := auth.Config{
		Enabled:       true,
		PublicHealth:  true,
		PublicMetrics: true,
		APIKeys: []auth.APIKey{
			{Name: "reader", Hash: hashKey(readKey), Scope: auth.ScopeRead},
			{Name: "admin", Hash: hashKey(adminKey), Scope: auth.ScopeAdmin},
		},
		JWT: auth.JWTConfig{
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
	a, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
