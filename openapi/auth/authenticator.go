package openapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/danielgtaylor/huma/v2"
)

// Authentication of the management API (REST and Connect/gRPC).
//
// Credentials:
//   - API keys, configured only as "sha256:<hex>" hashes and sent as
//     "Authorization: Bearer <key>" or "X-API-Key: <key>". A presented key
//     is hashed and compared with every configured hash in constant time.
//   - JWT bearer tokens ("Authorization: Bearer <jwt>"), HS256, RS256 or
//     ES256, with exp required, nbf and iat checked, iss equal to the
//     configured issuer and aud (a string or an array) containing the
//     configured audience. A bearer value is first tried as an API key,
//     then, if it has a JWT's three-part shape, as a token.
//
// Scopes are exactly "read" and "admin" (no prefixes such as
// "tasker:admin"). A JWT's scope claim is a space-separated string or an
// array of strings; "admin" anywhere wins, else "read", else the token
// grants nothing and is answered 403. "read" allows REST GET and HEAD and
// read-only procedures; "admin" allows everything.
//
// Public REST paths (no credential needed, a presented one is ignored):
// /health and /health/* when PublicHealth, /metrics when PublicMetrics,
// and always the API description: /openapi.json, /openapi.yaml,
// /openapi-3.0.json, /openapi-3.0.yaml, /schemas/*, /docs and /docs/*
// (the spec documents the API and holds no secret). Every other path,
// /v1/* and unknown ones alike, needs a credential: a request without one
// learns nothing, not even whether the path exists.
//
// Procedures (Connect, gRPC, gRPC-Web): grpc.health.v1.Health/* is public
// when PublicHealth (otherwise any valid credential may call it), server
// reflection (grpc.reflection.v1 and v1alpha) is always public. A
// procedure is read-only when its method name starts with Get, List or
// Watch followed by an upper-case letter or nothing (GetTask, ListTasks,
// WatchTask; not Listen), or when the handler declares it free of side
// effects (idempotency_level = NO_SIDE_EFFECTS). Every other procedure
// needs admin.

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
	// ScopeClaim names the claim holding the scope. Default "scope".
	ScopeClaim string
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero means
	// [JWTLeewayDefault]; negative means none.
	Leeway time.Duration
	// Now returns the current time; tests inject it. Default time.Now.
	Now func() time.Time
}

// AuthConfig configures an [Authenticator].
type AuthConfig struct {
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

// PrincipalKind tells how a principal authenticated.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalAPIKey PrincipalKind = "api_key"
	PrincipalJWT    PrincipalKind = "jwt"
)

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

// Authenticator checks the credentials of management API requests.
type Authenticator struct {
	cfg  AuthConfig
	keys []apiKeyHash
	jwt  *jwtKeys
}

type apiKeyHash struct {
	sum   [sha256.Size]byte
	name  string
	scope Scope
}

// NewAuthenticator checks cfg and parses its keys. With auth disabled it
// checks nothing and the authenticator lets every request through.
func NewAuthenticator(cfg AuthConfig) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg}
	if !cfg.Enabled {
		return a, nil
	}
	var problems []string
	for i, k := range cfg.APIKeys {
		hexSum, ok := strings.CutPrefix(k.Hash, "sha256:")
		sum, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(sum) != sha256.Size {
			problems = append(problems, fmt.Sprintf(`api key %d (%q): hash must be "sha256:" followed by 64 hex digits`, i, k.Name))
			continue
		}
		if k.Scope != ScopeRead && k.Scope != ScopeAdmin {
			problems = append(problems, fmt.Sprintf(`api key %d (%q): scope %q is not "read" or "admin"`, i, k.Name, k.Scope))
			continue
		}
		e := apiKeyHash{name: k.Name, scope: k.Scope}
		copy(e.sum[:], sum)
		a.keys = append(a.keys, e)
	}
	if cfg.JWT.Enabled {
		if cfg.JWT.ScopeClaim == "" {
			cfg.JWT.ScopeClaim = "scope"
		}
		switch {
		case cfg.JWT.Leeway == 0:
			cfg.JWT.Leeway = JWTLeewayDefault
		case cfg.JWT.Leeway < 0:
			cfg.JWT.Leeway = 0
		}
		if cfg.JWT.Now == nil {
			cfg.JWT.Now = time.Now
		}
		k, err := newJWTKeys(cfg.JWT)
		if err != nil {
			problems = append(problems, strings.TrimPrefix(err.Error(), "openapi: "))
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

// Enabled reports whether requests need credentials.
func (a *Authenticator) Enabled() bool { return a.cfg.Enabled }

// authError is a refused request. Its detail is safe to show the client.
type authError struct {
	// status is 401 (no or bad credential) or 403 (too little scope).
	status int
	detail string
	// bearerError is the RFC 6750 error code for WWW-Authenticate:
	// "" when no credential was sent, "invalid_request", "invalid_token"
	// or "insufficient_scope".
	bearerError string
}

func unauthenticated(code, format string, args ...any) *authError {
	return &authError{status: http.StatusUnauthorized, detail: fmt.Sprintf(format, args...), bearerError: code}
}

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
	claims, err := a.verifyJWT(cred)
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

func (k PrincipalKind) describe() string {
	if k == PrincipalJWT {
		return "token of"
	}
	return "API key"
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

// wwwAuthenticate is the WWW-Authenticate challenge for e (RFC 6750
// section 3).
func (e *authError) wwwAuthenticate() string {
	v := `Bearer realm="tasker-runner"`
	if e.bearerError != "" {
		v += `, error="` + e.bearerError + `"`
	}
	if e.bearerError == "insufficient_scope" {
		v += `, scope="admin"`
	}
	return v
}

// Middleware requires credentials on every path but the public ones (see
// the package's auth documentation) and puts the [Principal] in the
// request's context. Refusals are RFC 9457 problem documents: 401 with a
// WWW-Authenticate challenge when the credential is missing or invalid,
// 403 when its scope is too small.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	if !a.cfg.Enabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.publicPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		write := r.Method != http.MethodGet && r.Method != http.MethodHead
		p, aerr := a.check(r.Header, write)
		if aerr != nil {
			writeAuthProblem(w, aerr)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// publicPath reports whether a request for p needs no credential. It
// classifies the cleaned path, which is the one the mux routes (it
// redirects unclean paths), so "/health/../v1/tasks" is not public.
func (a *Authenticator) publicPath(p string) bool {
	if p == "" {
		p = "/"
	}
	p = path.Clean(p)
	switch p {
	case "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml", "/docs":
		return true
	case "/health":
		return a.cfg.PublicHealth
	case "/metrics":
		return a.cfg.PublicMetrics
	}
	switch {
	case strings.HasPrefix(p, "/schemas/"), strings.HasPrefix(p, "/docs/"):
		return true
	case strings.HasPrefix(p, "/health/"):
		return a.cfg.PublicHealth
	}
	return false
}

// writeAuthProblem answers e as an RFC 9457 problem document.
func writeAuthProblem(w http.ResponseWriter, e *authError) {
	h := w.Header()
	if e.status == http.StatusUnauthorized || e.bearerError == "insufficient_scope" {
		h.Set("WWW-Authenticate", e.wwwAuthenticate())
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(&huma.ErrorModel{
		Type:   "about:blank",
		Title:  http.StatusText(e.status),
		Status: e.status,
		Detail: e.detail,
	})
}

// Procedures that need no credential.
var (
	healthService      = "/grpc.health.v1.Health/"
	reflectionServices = []string{
		"/grpc.reflection.v1.ServerReflection/",
		"/grpc.reflection.v1alpha.ServerReflection/",
	}
)

// ConnectInterceptor applies the same rules to Connect, gRPC and gRPC-Web
// procedures, unary and streaming: it answers
// [connect.CodeUnauthenticated] for a missing or invalid credential and
// [connect.CodePermissionDenied] for a read-only one on a procedure that
// writes, and puts the [Principal] in the handler's context. Use it as a
// handler option (connect.WithInterceptors); on a client it does nothing.
func (a *Authenticator) ConnectInterceptor() connect.Interceptor {
	return connectAuth{a}
}

type connectAuth struct{ a *Authenticator }

// procedure decides on one call: the context to go on with, or an error.
func (c connectAuth) procedure(ctx context.Context, spec connect.Spec, peer connect.Peer, h http.Header) (context.Context, error) {
	a := c.a
	if !a.cfg.Enabled || spec.IsClient {
		return ctx, nil
	}
	proc := spec.Procedure
	for _, s := range reflectionServices {
		if strings.HasPrefix(proc, s) {
			return ctx, nil
		}
	}
	health := strings.HasPrefix(proc, healthService)
	if health && a.cfg.PublicHealth {
		return ctx, nil
	}
	write := !health && !readOnlyProcedure(spec)
	p, aerr := a.check(h, write)
	if aerr != nil {
		code := connect.CodeUnauthenticated
		if aerr.status == http.StatusForbidden {
			code = connect.CodePermissionDenied
		}
		err := connect.NewError(code, errors.New(aerr.detail))
		// The challenge is an HTTP header: gRPC and gRPC-Web carry error
		// metadata as trailers, where clients reject it.
		if code == connect.CodeUnauthenticated && peer.Protocol == connect.ProtocolConnect {
			err.Meta().Set("WWW-Authenticate", aerr.wwwAuthenticate())
		}
		return ctx, err
	}
	return WithPrincipal(ctx, p), nil
}

// readOnlyProcedure reports whether a procedure only reads: its method is
// named Get*, List* or Watch* (the prefix followed by an upper-case letter
// or nothing), or its handler declares no side effects.
func readOnlyProcedure(spec connect.Spec) bool {
	if spec.IdempotencyLevel == connect.IdempotencyNoSideEffects {
		return true
	}
	method := spec.Procedure[strings.LastIndexByte(spec.Procedure, '/')+1:]
	for _, prefix := range []string{"Get", "List", "Watch"} {
		if rest, ok := strings.CutPrefix(method, prefix); ok && (rest == "" || rest[0] >= 'A' && rest[0] <= 'Z') {
			return true
		}
	}
	return false
}

func (c connectAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := c.procedure(ctx, req.Spec(), req.Peer(), req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (c connectAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (c connectAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := c.procedure(ctx, conn.Spec(), conn.Peer(), conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// DocumentAuth declares the credentials in the OpenAPI document: the
// security schemes "bearer" (Authorization: Bearer, API key or JWT) and
// "apiKey" (X-API-Key), required by every /v1 operation, whose 401 and 403
// problem responses it adds. Call it after registering the operations.
// The document is the same whether auth is enabled or not, so the exported
// spec does not depend on configuration.
func DocumentAuth(o *huma.OpenAPI) {
	if o.Components == nil {
		o.Components = &huma.Components{}
	}
	if o.Components.SecuritySchemes == nil {
		o.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	o.Components.SecuritySchemes["bearer"] = &huma.SecurityScheme{
		Type:        "http",
		Scheme:      "bearer",
		Description: "An API key or a JWT (HS256, RS256 or ES256) with the configured issuer and audience and a \"read\" or \"admin\" scope.",
	}
	o.Components.SecuritySchemes["apiKey"] = &huma.SecurityScheme{
		Type:        "apiKey",
		In:          "header",
		Name:        "X-API-Key",
		Description: "An API key.",
	}
	problemResponse := func(status int, desc string) *huma.Response {
		return &huma.Response{
			Description: desc,
			Content: map[string]*huma.MediaType{
				"application/problem+json": {Schema: &huma.Schema{Ref: "#/components/schemas/ErrorModel"}},
			},
		}
	}
	for p, item := range o.Paths {
		if p != "/v1" && !strings.HasPrefix(p, "/v1/") {
			continue
		}
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Options, item.Head, item.Patch, item.Trace} {
			if op == nil {
				continue
			}
			op.Security = []map[string][]string{{"bearer": {}}, {"apiKey": {}}}
			if op.Responses == nil {
				op.Responses = map[string]*huma.Response{}
			}
			if _, ok := op.Responses["401"]; !ok {
				op.Responses["401"] = problemResponse(http.StatusUnauthorized, "Unauthorized: no credential, or one not accepted")
			}
			if _, ok := op.Responses["403"]; !ok {
				op.Responses["403"] = problemResponse(http.StatusForbidden, "Forbidden: the credential's scope does not allow this operation")
			}
		}
	}
}
