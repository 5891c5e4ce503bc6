package auth

import "time"

// Config configures an [Authenticator].
type Config struct {
	// Enabled turns authentication on. When false every request passes and
	// carries no [Principal].
	Enabled bool
	// PublicHealth keeps /health, /health/* and grpc.health.v1 open.
	PublicHealth bool
	// PublicMetrics keeps /metrics open.
	PublicMetrics bool
	// APIKeys are the accepted API keys.
	APIKeys []APIKey
	// JWT configures bearer tokens.
	JWT JWTConfig
}

// APIKey is one accepted API key.
type APIKey struct {
	// Name identifies the key; it becomes the [Principal]'s name.
	Name string
	// Hash is "sha256:" followed by the 64 hex digits of the SHA-256 of
	// the key.
	Hash string
	// Scope is [ScopeRead] or [ScopeAdmin].
	Scope Scope
}

// JWTConfig configures JWT bearer tokens.
type JWTConfig struct {
	// Enabled accepts JWT bearer tokens.
	Enabled bool
	// Issuer is the required "iss" claim.
	Issuer string
	// Audience must be the "aud" claim or one of its elements.
	Audience string
	// HS256Secret verifies HS256 tokens; at least [MinHS256SecretBytes].
	HS256Secret string
	// PublicKeysPEM are PEM documents (one per configured file) of public
	// keys verifying RS256 (RSA, at least [MinRSAKeyBits]) and ES256
	// (ECDSA P-256) tokens; see [ParsePublicKeysPEM].
	PublicKeysPEM [][]byte
	// ScopeClaim names the claim holding the scope. Default
	// [ScopeClaimDefault].
	ScopeClaim string
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means
	// [JWTLeewayDefault]; negative means none.
	Leeway time.Duration
	// Now returns the current time; tests inject it. Default time.Now.
	Now func() time.Time
}

// JWT limits and defaults.
const (
	// ScopeClaimDefault is the default of [JWTConfig.ScopeClaim].
	ScopeClaimDefault = "scope"
	// JWTLeewayDefault is the clock skew allowed on exp, nbf and iat when
	// [JWTConfig.Leeway] is zero.
	JWTLeewayDefault = 30 * time.Second
	// MaxJWTBytes bounds the accepted token size, so decoding and
	// verifying cost little whatever a client sends.
	MaxJWTBytes = 8 << 10
	// MinHS256SecretBytes is the shortest accepted HS256 secret: RFC 7518
	// section 3.2 requires a key at least as long as the hash output.
	MinHS256SecretBytes = 32
	// MinRSAKeyBits is the smallest accepted RSA public key.
	MinRSAKeyBits = 2048
)

// withDefaults fills the JWT defaults in.
func (c JWTConfig) withDefaults() JWTConfig {
	if c.ScopeClaim == "" {
		c.ScopeClaim = ScopeClaimDefault
	}
	switch {
	case c.Leeway == 0:
		c.Leeway = JWTLeewayDefault
	case c.Leeway < 0:
		c.Leeway = 0
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}
