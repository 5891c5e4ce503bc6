package openapi

import (
	"crypto"

	"github.com/tasker-runner/tasker-runner/openapi/auth"
)

// The API's authentication lives in package [auth]. These names forward to
// it for the programs that configure the API through this package (the
// serve command); code inside this package calls [auth] itself.

// Authenticator checks the credentials of API requests; see
// [auth.Authenticator].
type Authenticator = auth.Authenticator

// AuthConfig configures an [Authenticator]; see [auth.Config].
type AuthConfig = auth.Config

// APIKey is one accepted API key; see [auth.APIKey].
type APIKey = auth.APIKey

// JWTConfig configures JWT bearer tokens; see [auth.JWTConfig].
type JWTConfig = auth.JWTConfig

// Scope is what a credential may do; see [auth.Scope].
type Scope = auth.Scope

// ScopeAdmin allows every operation; see [auth.ScopeAdmin].
const ScopeAdmin = auth.ScopeAdmin

// NewAuthenticator checks cfg and parses its keys; see [auth.New].
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) { return auth.New(cfg) }

// ParsePublicKeysPEM parses the public keys of one PEM document; see
// [auth.ParsePublicKeysPEM].
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	return auth.ParsePublicKeysPEM(data)
}
