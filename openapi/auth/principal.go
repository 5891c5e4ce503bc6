package auth

import "context"

// Scope is what a credential may do.
type Scope string

// Scopes. Admin includes read.
const (
	// ScopeRead allows reading: REST GET/HEAD and read-only procedures.
	ScopeRead Scope = "read"
	// ScopeAdmin allows every operation.
	ScopeAdmin Scope = "admin"
)

// allows reports whether s permits a request, write telling whether the
// request changes anything.
func (s Scope) allows(write bool) bool {
	return s == ScopeAdmin || s == ScopeRead && !write
}

// PrincipalKind tells how a principal authenticated.
type PrincipalKind string

// Principal kinds.
const (
	// PrincipalAPIKey authenticated with an [APIKey].
	PrincipalAPIKey PrincipalKind = "api_key"
	// PrincipalJWT authenticated with a JWT bearer token.
	PrincipalJWT PrincipalKind = "jwt"
)

func (k PrincipalKind) describe() string {
	if k == PrincipalJWT {
		return "token of"
	}
	return "API key"
}

// Principal is the authenticated caller of a request.
type Principal struct {
	// Name is the API key's configured name, or the token's "sub" claim
	// ("jwt" when it has none).
	Name string
	// Scope is what the principal may do.
	Scope Scope
	// Kind tells whether an API key or a JWT authenticated it.
	Kind PrincipalKind
}

type principalKey struct{}

// PrincipalFrom returns the principal that authenticated the request of
// ctx. It reports false when auth is disabled or the path is public.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p, as the middleware does; for tests
// of code that reads [PrincipalFrom].
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}
