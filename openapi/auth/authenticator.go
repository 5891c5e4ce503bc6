package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Authenticator checks the credentials of management API requests. Its
// zero value lets every request through, as a disabled [Config] does.
type Authenticator struct {
	cfg  Config
	keys []apiKeyHash
	jwt  *jwtKeys
}

type apiKeyHash struct {
	sum   [sha256.Size]byte
	name  string
	scope Scope
}

// New checks cfg and parses its keys. With auth disabled it checks nothing
// and the authenticator lets every request through. Its errors start with
// "openapi: auth: " and name every problem of cfg.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg}
	if !cfg.Enabled {
		return a, nil
	}
	var problems []string
	for i, k := range cfg.APIKeys {
		e, problem := parseAPIKey(i, k)
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		a.keys = append(a.keys, e)
	}
	if cfg.JWT.Enabled {
		cfg.JWT = cfg.JWT.withDefaults()
		k, err := newJWTKeys(cfg.JWT)
		if err != nil {
			problems = append(problems, err.Error())
		}
		a.jwt = k
	} else if len(cfg.APIKeys) == 0 {
		problems = append(problems, "auth is enabled but no request could authenticate: add API keys or enable JWT")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("openapi: auth: %s", strings.Join(problems, "; "))
	}
	a.cfg = cfg
	return a, nil
}

// parseAPIKey checks the i-th configured key: its hash, or what is wrong.
func parseAPIKey(i int, k APIKey) (apiKeyHash, string) {
	hexSum, ok := strings.CutPrefix(k.Hash, "sha256:")
	sum, err := hex.DecodeString(hexSum)
	if !ok || err != nil || len(sum) != sha256.Size {
		return apiKeyHash{}, fmt.Sprintf(`api key %d (%q): hash must be "sha256:" followed by 64 hex digits`, i, k.Name)
	}
	if k.Scope != ScopeRead && k.Scope != ScopeAdmin {
		return apiKeyHash{}, fmt.Sprintf(`api key %d (%q): scope %q is not "read" or "admin"`, i, k.Name, k.Scope)
	}
	e := apiKeyHash{name: k.Name, scope: k.Scope}
	copy(e.sum[:], sum)
	return e, ""
}

// Enabled reports whether requests need credentials.
func (a *Authenticator) Enabled() bool { return a.cfg.Enabled }

// authenticate finds and checks the credential in h.
func (a *Authenticator) authenticate(h http.Header) (Principal, *authError) {
	authz, apiKey := h.Values("Authorization"), h.Values("X-API-Key")
	switch {
	case len(authz) == 0 && len(apiKey) == 0:
		return Principal{}, unauthenticated("", "credentials required: send \"Authorization: Bearer <API key or token>\" or \"X-API-Key: <API key>\"")
	case len(authz)+len(apiKey) > 1:
		return Principal{}, unauthenticated("invalid_request", "send one credential: one Authorization or one X-API-Key header, not several")
	case len(apiKey) == 1:
		key := strings.TrimSpace(apiKey[0])
		if key == "" {
			return Principal{}, unauthenticated("invalid_request", "X-API-Key header is empty")
		}
		if p, ok := a.lookupKey(key); ok {
			return p, nil
		}
		return Principal{}, unauthenticated("invalid_token", "API key not accepted")
	}
	scheme, cred, _ := strings.Cut(strings.TrimSpace(authz[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		// The scheme is not the credential: naming it helps. Clipped in
		// case a client put the secret there.
		if len(scheme) > 16 {
			scheme = scheme[:16] + "…"
		}
		return Principal{}, unauthenticated("invalid_request", "Authorization scheme %q is not supported: use Bearer", scheme)
	}
	cred = strings.TrimSpace(cred)
	if cred == "" {
		return Principal{}, unauthenticated("invalid_request", "Authorization: Bearer has no credential")
	}
	if p, ok := a.lookupKey(cred); ok {
		return p, nil
	}
	if !looksLikeJWT(cred) {
		return Principal{}, unauthenticated("invalid_token", "API key not accepted")
	}
	if a.jwt == nil {
		return Principal{}, unauthenticated("invalid_token", "bearer token looks like a JWT, but this server accepts only API keys")
	}
	return a.jwtPrincipal(cred)
}

// jwtPrincipal verifies a bearer token and finds its principal and scope.
func (a *Authenticator) jwtPrincipal(token string) (Principal, *authError) {
	claims, err := a.verifyJWT(token)
	if err != nil {
		return Principal{}, unauthenticated("invalid_token", "%s", err.Error())
	}
	p := Principal{Name: claims.subject, Kind: PrincipalJWT}
	if p.Name == "" {
		p.Name = "jwt"
	}
	for _, s := range claims.scopes {
		switch Scope(s) {
		case ScopeAdmin:
			p.Scope = ScopeAdmin
		case ScopeRead:
			if p.Scope == "" {
				p.Scope = ScopeRead
			}
		}
	}
	if p.Scope == "" {
		detail := fmt.Sprintf("token has no %q claim; it needs \"read\" or \"admin\"", a.cfg.JWT.ScopeClaim)
		if claims.scopeFound {
			detail = fmt.Sprintf("token's %q claim grants neither \"read\" nor \"admin\"", a.cfg.JWT.ScopeClaim)
		}
		return Principal{}, &authError{status: http.StatusForbidden, detail: detail, bearerError: "insufficient_scope"}
	}
	return p, nil
}

// lookupKey finds the API key whose hash matches key. Every configured
// hash is compared, in constant time, whatever matches.
func (a *Authenticator) lookupKey(key string) (Principal, bool) {
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], a.keys[i].sum[:]) == 1 && found < 0 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	k := a.keys[found]
	return Principal{Name: k.name, Scope: k.scope, Kind: PrincipalAPIKey}, true
}

// authorize checks that p may make a request that writes or only reads.
func authorize(p Principal, write bool) *authError {
	if p.Scope.allows(write) {
		return nil
	}
	return &authError{
		status:      http.StatusForbidden,
		detail:      fmt.Sprintf("%s %q has scope %q, which only reads; this operation needs %q", p.Kind.describe(), p.Name, p.Scope, ScopeAdmin),
		bearerError: "insufficient_scope",
	}
}

// check authenticates h and authorises the request.
func (a *Authenticator) check(h http.Header, write bool) (Principal, *authError) {
	p, aerr := a.authenticate(h)
	if aerr != nil {
		return Principal{}, aerr
	}
	if aerr := authorize(p, write); aerr != nil {
		return Principal{}, aerr
	}
	return p, nil
}
