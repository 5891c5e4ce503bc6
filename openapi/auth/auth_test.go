package auth_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/openapi/auth"
	"github.com/tasker-runner/tasker-runner/openapi/auth/authtest"
)

const (
	readKey   = authtest.ReadKey
	adminKey  = authtest.AdminKey
	hsSecret  = authtest.HS256Secret
	issuer    = authtest.Issuer
	audience  = authtest.Audience
	principal = "X-Principal"
)

var (
	authNow      = authtest.Now
	hashKey      = authtest.HashKey
	claims       = authtest.Claims
	checkProblem = authtest.CheckProblem
)

// newAuth builds an authenticator accepting readKey, adminKey and JWTs
// (HS256 with hsSecret unless noHS, RS256 with the test RSA key, ES256
// with the test EC key), edited by edit.
func newAuth(t testing.TB, edit func(*auth.Config)) *auth.Authenticator {
	t.Helper()
	keys := jwtTestKeys()
	cfg := auth.Config{
		Enabled:       true,
		PublicHealth:  true,
		PublicMetrics: true,
		APIKeys: []auth.APIKey{
			{Name: "reader", Hash: hashKey(readKey), Scope: auth.ScopeRead},
			// Upper-case hex is accepted too.
			{Name: "admin", Hash: "sha256:" + strings.ToUpper(strings.TrimPrefix(hashKey(adminKey), "sha256:")), Scope: auth.ScopeAdmin},
		},
		JWT: auth.JWTConfig{
			Enabled:       true,
			Issuer:        issuer,
			Audience:      audience,
			HS256Secret:   hsSecret,
			PublicKeysPEM: [][]byte{pkixPEM(t, &keys.rsa.PublicKey), pkixPEM(t, &keys.ec.PublicKey)},
			ScopeClaim:    "scope",
			Now:           func() time.Time { return authNow },
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

// echoPrincipal answers 200 with the request's principal in a header.
var echoPrincipal = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		w.Header().Set(principal, fmt.Sprintf("%s/%s/%s", p.Name, p.Scope, p.Kind))
	}
	_, _ = io.WriteString(w, "ok")
})

// middlewareCase is one request through [auth.Authenticator.Middleware]
// and what it must answer.
type middlewareCase struct {
	name      string
	server    string // default "full"
	method    string // default GET
	path      string // default /v1/tasks
	header    http.Header
	want      int
	detail    string // substring of the problem's detail
	principal string // X-Principal of a 2xx answer
}

// middlewareServers serves echoPrincipal behind the authenticators the
// cases name: "full" (newAuth), "rsa-only" (only RS256 tokens with their
// scope in "roles", and nothing public), "keys-only" and "disabled".
func middlewareServers(t *testing.T) map[string]*httptest.Server {
	t.Helper()
	servers := map[string]*httptest.Server{
		"full": httptest.NewServer(newAuth(t, nil).Middleware(echoPrincipal)),
		"rsa-only": httptest.NewServer(newAuth(t, func(c *auth.Config) {
			c.PublicHealth, c.PublicMetrics = false, false
			c.JWT.HS256Secret = ""
			c.JWT.PublicKeysPEM = c.JWT.PublicKeysPEM[:1]
			c.JWT.ScopeClaim = "roles"
		}).Middleware(echoPrincipal)),
		"keys-only": httptest.NewServer(newAuth(t, func(c *auth.Config) { c.JWT = auth.JWTConfig{} }).Middleware(echoPrincipal)),
		"disabled":  httptest.NewServer(newAuth(t, func(c *auth.Config) { c.Enabled = false }).Middleware(echoPrincipal)),
	}
	for _, s := range servers {
		t.Cleanup(s.Close)
	}
	return servers
}

// bearer is an Authorization header carrying cred.
func bearer(cred string) http.Header { return http.Header{"Authorization": {"Bearer " + cred}} }

// runMiddlewareCases sends each case to its server, in parallel subtests.
func runMiddlewareCases(t *testing.T, cases []middlewareCase) {
	t.Helper()
	servers := middlewareServers(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkMiddlewareCase(t, servers[cmp.Or(tc.server, "full")], tc)
		})
	}
}

// checkMiddlewareCase sends tc's request to srv and checks the answer: its
// status, the principal of a 2xx, else the problem document, which must
// not echo the credential.
func checkMiddlewareCase(t *testing.T, srv *httptest.Server, tc middlewareCase) {
	t.Helper()
	req, err := http.NewRequest(cmp.Or(tc.method, "GET"), srv.URL+cmp.Or(tc.path, "/v1/tasks"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range tc.header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != tc.want {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, tc.want, body)
	}
	if tc.want < 300 {
		if got := resp.Header.Get(principal); tc.principal != "" && got != tc.principal {
			t.Fatalf("principal %q, want %q", got, tc.principal)
		}
		if tc.server == "disabled" && resp.Header.Get(principal) != "" {
			t.Fatalf("disabled auth set a principal: %q", resp.Header.Get(principal))
		}
		return
	}
	checkProblem(t, resp, body, tc.want, tc.detail)
	for _, vs := range tc.header {
		for _, v := range vs {
			cred := v[strings.LastIndexByte(v, ' ')+1:]
			if len(cred) > 8 && strings.Contains(string(body), cred) {
				t.Fatalf("problem echoes the credential: %s", body)
			}
		}
	}
}

// API keys, as bearer tokens and X-API-Key, and their scopes.
func TestAuthMiddlewareAPIKeys(t *testing.T) {
	t.Parallel()
	hs := []byte(hsSecret)
	runMiddlewareCases(t, []middlewareCase{

		{name: "no credential", header: nil, want: 401, detail: "credentials required"},
		{name: "no credential on unknown path", path: "/nope", want: 401},
		{name: "no credential on POST", method: "POST", want: 401},
		{name: "wrong key", header: bearer("wrong-key"), want: 401, detail: "API key not accepted"},
		{name: "read key GET", header: bearer(readKey), want: 200, principal: "reader/read/api_key"},
		{name: "read key HEAD", method: "HEAD", header: bearer(readKey), want: 200},
		{name: "read key POST", method: "POST", header: bearer(readKey), want: 403, detail: `API key "reader" has scope "read"`},
		{name: "read key DELETE", method: "DELETE", header: bearer(readKey), want: 403},
		{name: "admin key POST", method: "POST", header: bearer(adminKey), want: 200, principal: "admin/admin/api_key"},
		{name: "admin key DELETE", method: "DELETE", header: bearer(adminKey), want: 200},
		{name: "bearer scheme is case-insensitive", header: http.Header{"Authorization": {"bearer " + readKey}}, want: 200},
		{name: "X-API-Key read", header: http.Header{"X-Api-Key": {readKey}}, want: 200, principal: "reader/read/api_key"},
		{name: "X-API-Key admin POST", method: "PUT", header: http.Header{"X-Api-Key": {adminKey}}, want: 200},
		{name: "X-API-Key wrong", header: http.Header{"X-Api-Key": {"nope"}}, want: 401, detail: "API key not accepted"},
		{name: "X-API-Key takes no JWT", header: http.Header{"X-Api-Key": {signJWT(t, "HS256", hs, claims("admin", nil))}}, want: 401},
		{name: "two credentials", header: http.Header{"Authorization": {"Bearer " + readKey}, "X-Api-Key": {adminKey}}, want: 401, detail: "one credential"},
		{name: "basic scheme", header: http.Header{"Authorization": {"Basic " + readKey}}, want: 401, detail: `scheme "Basic" is not supported`},
		{name: "empty bearer", header: http.Header{"Authorization": {"Bearer "}}, want: 401, detail: "no credential"},
	})
}

// Public paths, with and without PublicHealth and PublicMetrics, and
// disabled auth.
func TestAuthMiddlewarePublicPaths(t *testing.T) {
	t.Parallel()
	runMiddlewareCases(t, []middlewareCase{
		{name: "health public", path: "/health", want: 200},
		{name: "health ready public", path: "/health/ready", want: 200},
		{name: "metrics public", path: "/metrics", want: 200},
		{name: "spec public", path: "/openapi.json", want: 200},
		{name: "spec yaml public", path: "/openapi.yaml", want: 200},
		{name: "schemas public", path: "/schemas/Task.json", want: 200},
		{name: "docs public", path: "/docs", want: 200},
		{name: "dot-dot is not public", path: "/health/../v1/tasks", want: 401},
		{name: "health not public", server: "rsa-only", path: "/health", want: 401},
		{name: "health live not public", server: "rsa-only", path: "/health/live", want: 401},
		{name: "metrics not public", server: "rsa-only", path: "/metrics", want: 401},
		{name: "health with read key", server: "rsa-only", path: "/health/ready", header: bearer(readKey), want: 200},
		{name: "spec public anyway", server: "rsa-only", path: "/openapi.json", want: 200},
		{name: "disabled", server: "disabled", method: "POST", want: 200, principal: ""},
		{name: "disabled ignores bad key", server: "disabled", method: "DELETE", header: bearer("wrong"), want: 200},
	})
}

// HS256 tokens: claims, scopes, leeway, algorithms and alg confusion.
func TestAuthMiddlewareHS256(t *testing.T) {
	t.Parallel()
	keys := jwtTestKeys()
	hs := []byte(hsSecret)
	rsaPubPEM := pkixPEM(t, &keys.rsa.PublicKey)
	runMiddlewareCases(t, []middlewareCase{
		{name: "hs256 admin POST", method: "POST", header: bearer(signJWT(t, "HS256", hs, claims("admin", nil))), want: 200, principal: "alice/admin/jwt"},
		{name: "hs256 read GET", header: bearer(signJWT(t, "HS256", hs, claims("read", nil))), want: 200, principal: "alice/read/jwt"},
		{name: "hs256 read POST", method: "POST", header: bearer(signJWT(t, "HS256", hs, claims("read", nil))), want: 403, detail: `token of "alice" has scope "read"`},
		{name: "hs256 scope string", method: "PATCH", header: bearer(signJWT(t, "HS256", hs, claims("openid read admin", nil))), want: 200, principal: "alice/admin/jwt"},
		{name: "hs256 scope array", header: bearer(signJWT(t, "HS256", hs, claims([]string{"email", "read"}, nil))), want: 200, principal: "alice/read/jwt"},
		{name: "hs256 prefixed scope", header: bearer(signJWT(t, "HS256", hs, claims("tasker:admin", nil))), want: 403, detail: `grants neither "read" nor "admin"`},
		{name: "hs256 no scope", header: bearer(signJWT(t, "HS256", hs, claims(nil, nil))), want: 403, detail: `token has no "scope" claim`},
		{name: "hs256 no sub", header: bearer(signJWT(t, "HS256", hs, claims("read", map[string]any{"sub": nil}))), want: 200, principal: "jwt/read/jwt"},
		{name: "hs256 expired", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"exp": authNow.Add(-time.Hour).Unix()}))), want: 401, detail: "token expired at 2026-07-01T11:00:00Z"},
		{name: "hs256 expired within leeway", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"exp": authNow.Add(-10 * time.Second).Unix()}))), want: 200},
		{name: "hs256 fractional exp", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"exp": float64(authNow.Add(time.Minute).Unix()) + 0.5}))), want: 200},
		{name: "hs256 no exp", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"exp": nil}))), want: 401, detail: `no "exp"`},
		{name: "hs256 exp not a number", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"exp": "tomorrow"}))), want: 401, detail: `claim "exp" must be a number`},
		{name: "hs256 not yet valid", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"nbf": authNow.Add(time.Hour).Unix()}))), want: 401, detail: "not valid before 2026-07-01T13:00:00Z"},
		{name: "hs256 issued in the future", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"iat": authNow.Add(time.Hour).Unix()}))), want: 401, detail: "issued in the future"},
		{name: "hs256 wrong audience", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"aud": "x"}))), want: 401, detail: `audience "x" not accepted`},
		{name: "hs256 audience array", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"aud": []string{"x", audience}}))), want: 200},
		{name: "hs256 wrong audience array", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"aud": []string{"x", "y"}}))), want: 401, detail: `audience "x", "y" not accepted`},
		{name: "hs256 no audience", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"aud": nil}))), want: 401, detail: `no "aud"`},
		{name: "hs256 wrong issuer", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"iss": "https://evil.example"}))), want: 401, detail: `issuer "https://evil.example" not accepted`},
		{name: "hs256 no issuer", header: bearer(signJWT(t, "HS256", hs, claims("admin", map[string]any{"iss": nil}))), want: 401, detail: `no "iss"`},
		{name: "hs256 bad signature", header: bearer(signJWT(t, "HS256", []byte(strings.Repeat("x", 32)), claims("admin", nil))), want: 401, detail: "signature is invalid"},
		{name: "hs256 tampered claims", header: bearer(tamper(signJWT(t, "HS256", hs, claims("read", nil)), claims("admin", nil))), want: 401, detail: "signature is invalid"},
		{name: "alg none", header: bearer(signJWT(t, "none", nil, claims("admin", nil))), want: 401, detail: `algorithm "none" is not accepted`},
		{name: "alg missing", header: bearer(signJWT(t, "", nil, claims("admin", nil))), want: 401, detail: `no "alg"`},
		{name: "alg HS512", header: bearer(signJWT(t, "HS512", hs, claims("admin", nil))), want: 401, detail: `algorithm "HS512" is not accepted`},
		{name: "crit header", header: bearer(signJWT(t, "HS256", hs, claims("admin", nil), map[string]any{"crit": []string{"exp"}})), want: 401, detail: "crit"},
		{name: "malformed jwt", header: bearer("abc.def.ghi"), want: 401, detail: "malformed token"},
		{name: "jwt on keys-only server", server: "keys-only", header: bearer(signJWT(t, "HS256", hs, claims("admin", nil))), want: 401, detail: "accepts only API keys"},
		{name: "keys-only still takes keys", server: "keys-only", method: "POST", header: bearer(adminKey), want: 200},
		// Alg confusion: an HS256 token whose secret is the RSA public key
		// must never verify against that key.
		{name: "alg confusion with hs256 configured", header: bearer(signJWT(t, "HS256", rsaPubPEM, claims("admin", nil))), want: 401, detail: "signature is invalid"},
		{name: "alg confusion rsa only", server: "rsa-only", header: bearer(signJWT(t, "HS256", rsaPubPEM, claims("admin", nil))), want: 401, detail: `algorithm "HS256" is not accepted; this server accepts RS256`},
	})
}

// RS256 and ES256 tokens: key choice by alg, other keys, relabelled tokens.
func TestAuthMiddlewareRS256ES256(t *testing.T) {
	t.Parallel()
	keys := jwtTestKeys()
	hs := []byte(hsSecret)
	runMiddlewareCases(t, []middlewareCase{
		{name: "rs256 admin POST", method: "POST", header: bearer(signJWT(t, "RS256", keys.rsa, claims("admin", nil))), want: 200, principal: "alice/admin/jwt"},
		{name: "rs256 other key", header: bearer(signJWT(t, "RS256", keys.otherRSA, claims("admin", nil))), want: 401, detail: "signature is invalid"},
		{name: "rs256 expired", header: bearer(signJWT(t, "RS256", keys.rsa, claims("admin", map[string]any{"exp": authNow.Add(-time.Hour).Unix()}))), want: 401, detail: "expired"},
		{name: "rs256 custom scope claim", server: "rsa-only", method: "POST", header: bearer(signJWT(t, "RS256", keys.rsa, claims(nil, map[string]any{"roles": []string{"admin"}}))), want: 200, principal: "alice/admin/jwt"},
		{name: "rs256 scope claim not configured", server: "rsa-only", header: bearer(signJWT(t, "RS256", keys.rsa, claims("admin", nil))), want: 403, detail: `no "roles" claim`},
		{name: "es256 admin POST", method: "POST", header: bearer(signJWT(t, "ES256", keys.ec, claims("admin", nil))), want: 200, principal: "alice/admin/jwt"},
		{name: "es256 read POST", method: "POST", header: bearer(signJWT(t, "ES256", keys.ec, claims("read", nil))), want: 403},
		{name: "es256 other key", header: bearer(signJWT(t, "ES256", keys.otherEC, claims("admin", nil))), want: 401, detail: "signature is invalid"},
		{name: "es256 signed with rsa", header: bearer(relabel(signJWT(t, "RS256", keys.rsa, claims("admin", nil)), "ES256")), want: 401, detail: "ES256 wants 64 bytes"},
		{name: "es256 on rsa-only server", server: "rsa-only", header: bearer(signJWT(t, "ES256", keys.ec, claims("admin", nil))), want: 401, detail: `algorithm "ES256" is not accepted`},
		{name: "rs256 signed with hmac", header: bearer(relabel(signJWT(t, "HS256", hs, claims("admin", nil)), "RS256")), want: 401, detail: "signature is invalid"},
	})
}

// tamper replaces a token's claims, keeping its header and signature.
func tamper(token string, claims map[string]any) string {
	parts := strings.Split(token, ".")
	b, _ := json.Marshal(claims)
	return parts[0] + "." + base64URL(b) + "." + parts[2]
}

// relabel replaces a token's alg, keeping its claims and signature.
func relabel(token, alg string) string {
	parts := strings.Split(token, ".")
	b, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	return base64URL(b) + "." + parts[1] + "." + parts[2]
}

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func TestAuthPrincipalFrom(t *testing.T) {
	t.Parallel()
	if _, ok := auth.PrincipalFrom(context.Background()); ok {
		t.Fatal("PrincipalFrom(empty context) reported a principal")
	}
	want := auth.Principal{Name: "ci", Scope: auth.ScopeRead, Kind: auth.PrincipalAPIKey}
	got, ok := auth.PrincipalFrom(auth.WithPrincipal(context.Background(), want))
	if !ok || got != want {
		t.Fatalf("PrincipalFrom = %+v, %v; want %+v", got, ok, want)
	}
}

func TestAuthDocument(t *testing.T) {
	t.Parallel()
	o := openapi.New(openapi.Config{}).API().OpenAPI()
	auth.Document(o)
	if s := o.Components.SecuritySchemes; s["bearer"] == nil || s["apiKey"] == nil || s["apiKey"].Name != "X-API-Key" {
		t.Fatalf("security schemes %+v", s)
	}
	var v1 int
	for p, item := range o.Paths {
		ops := map[string]bool{}
		if item.Get != nil {
			ops["GET"] = len(item.Get.Security) > 0 && item.Get.Responses["401"] != nil && item.Get.Responses["403"] != nil
		}
		if item.Post != nil {
			ops["POST"] = len(item.Post.Security) > 0 && item.Post.Responses["401"] != nil
		}
		for method, secured := range ops {
			if strings.HasPrefix(p, "/v1/") {
				v1++
				if !secured {
					t.Errorf("%s %s is not documented as secured", method, p)
				}
			} else if secured {
				t.Errorf("%s %s is documented as secured but is public", method, p)
			}
		}
	}
	if v1 == 0 {
		t.Fatal("no /v1 operation found")
	}
}

// Connect/gRPC.

const (
	procGetStatus  = "/tasker.management.v1.ManagementService/GetStatus"
	procSubmitTask = "/tasker.management.v1.ManagementService/SubmitTask"
	procListen     = "/tasker.management.v1.ManagementService/Listen"
	procCompute    = "/tasker.management.v1.ManagementService/Compute"
	procWatchTasks = "/tasker.management.v1.ManagementService/WatchTasks"
	procHealth     = "/grpc.health.v1.Health/Check"
	procReflection = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
)

// connectServer serves stand-in procedures behind a's interceptor over
// HTTP/2 with TLS, so both the Connect and the gRPC protocol work. Each
// answers its principal in the X-Principal response header.
func connectServer(t *testing.T, a *auth.Authenticator) *httptest.Server {
	t.Helper()
	opts := connect.WithInterceptors(a.ConnectInterceptor())
	unary := func(ctx context.Context, _ *connect.Request[emptypb.Empty]) (*connect.Response[emptypb.Empty], error) {
		resp := connect.NewResponse(&emptypb.Empty{})
		if p, ok := auth.PrincipalFrom(ctx); ok {
			resp.Header().Set(principal, fmt.Sprintf("%s/%s/%s", p.Name, p.Scope, p.Kind))
		}
		return resp, nil
	}
	mux := http.NewServeMux()
	for _, proc := range []string{procGetStatus, procSubmitTask, procListen, procHealth, procReflection} {
		mux.Handle(proc, connect.NewUnaryHandler(proc, unary, opts))
	}
	mux.Handle(procCompute, connect.NewUnaryHandler(procCompute, unary, opts, connect.WithIdempotency(connect.IdempotencyNoSideEffects)))
	mux.Handle(procWatchTasks, connect.NewServerStreamHandler(procWatchTasks,
		func(ctx context.Context, _ *connect.Request[emptypb.Empty], s *connect.ServerStream[emptypb.Empty]) error {
			if _, ok := auth.PrincipalFrom(ctx); !ok {
				return connect.NewError(connect.CodeInternal, errors.New("no principal"))
			}
			return s.Send(&emptypb.Empty{})
		}, opts))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestAuthConnectInterceptor(t *testing.T) {
	t.Parallel()
	hs := []byte(hsSecret)
	full := connectServer(t, newAuth(t, nil))
	private := connectServer(t, newAuth(t, func(c *auth.Config) { c.PublicHealth = false }))
	disabled := connectServer(t, newAuth(t, func(c *auth.Config) { c.Enabled = false }))
	readJWT := signJWT(t, "HS256", hs, claims("read", nil))
	expiredJWT := signJWT(t, "HS256", hs, claims("admin", map[string]any{"exp": authNow.Add(-time.Hour).Unix()}))
	wrongAudJWT := signJWT(t, "HS256", hs, claims("admin", map[string]any{"aud": "x"}))

	for _, tc := range []struct {
		name      string
		srv       *httptest.Server
		proc      string
		header    [2]string // name, value
		want      connect.Code
		detail    string
		principal string
	}{
		{name: "no credential", proc: procGetStatus, want: connect.CodeUnauthenticated, detail: "credentials required"},
		{name: "wrong key", proc: procGetStatus, header: [2]string{"Authorization", "Bearer nope"}, want: connect.CodeUnauthenticated, detail: "API key not accepted"},
		{name: "read key on read", proc: procGetStatus, header: [2]string{"Authorization", "Bearer " + readKey}, principal: "reader/read/api_key"},
		{name: "X-API-Key on read", proc: procGetStatus, header: [2]string{"X-API-Key", readKey}, principal: "reader/read/api_key"},
		{name: "read key on write", proc: procSubmitTask, header: [2]string{"Authorization", "Bearer " + readKey}, want: connect.CodePermissionDenied, detail: "only reads"},
		{name: "Listen is not List", proc: procListen, header: [2]string{"X-API-Key", readKey}, want: connect.CodePermissionDenied},
		{name: "no side effects is read", proc: procCompute, header: [2]string{"X-API-Key", readKey}},
		{name: "admin key on write", proc: procSubmitTask, header: [2]string{"Authorization", "Bearer " + adminKey}, principal: "admin/admin/api_key"},
		{name: "read jwt on write", proc: procSubmitTask, header: [2]string{"Authorization", "Bearer " + readJWT}, want: connect.CodePermissionDenied},
		{name: "read jwt on read", proc: procGetStatus, header: [2]string{"Authorization", "Bearer " + readJWT}, principal: "alice/read/jwt"},
		{name: "expired jwt", proc: procGetStatus, header: [2]string{"Authorization", "Bearer " + expiredJWT}, want: connect.CodeUnauthenticated, detail: "token expired at"},
		{name: "wrong audience", proc: procGetStatus, header: [2]string{"Authorization", "Bearer " + wrongAudJWT}, want: connect.CodeUnauthenticated, detail: `audience "x" not accepted`},
		{name: "health public", proc: procHealth},
		{name: "reflection public", proc: procReflection},
		{name: "reflection public without public health", srv: private, proc: procReflection},
		{name: "health private", srv: private, proc: procHealth, want: connect.CodeUnauthenticated},
		{name: "health private with read key", srv: private, proc: procHealth, header: [2]string{"X-API-Key", readKey}, principal: "reader/read/api_key"},
		{name: "disabled", srv: disabled, proc: procSubmitTask},
	} {
		for _, protocol := range []string{"connect", "grpc"} {
			t.Run(tc.name+"/"+protocol, func(t *testing.T) {
				t.Parallel()
				srv := tc.srv
				if srv == nil {
					srv = full
				}
				var opts []connect.ClientOption
				if protocol == "grpc" {
					opts = append(opts, connect.WithGRPC())
				}
				client := connect.NewClient[emptypb.Empty, emptypb.Empty](srv.Client(), srv.URL+tc.proc, opts...)
				req := connect.NewRequest(&emptypb.Empty{})
				if tc.header[0] != "" {
					req.Header().Set(tc.header[0], tc.header[1])
				}
				resp, err := client.CallUnary(context.Background(), req)
				checkConnect(t, err, tc.want, tc.detail)
				// The Bearer challenge only where it is an HTTP header: gRPC
				// carries error metadata as trailers.
				var cerr *connect.Error
				if errors.As(err, &cerr) && cerr.Code() == connect.CodeUnauthenticated {
					challenge := cerr.Meta().Get("WWW-Authenticate")
					if (protocol == "connect") != strings.HasPrefix(challenge, "Bearer") {
						t.Fatalf("over %s: WWW-Authenticate %q", protocol, challenge)
					}
				}
				if err == nil && tc.principal != "" {
					if got := resp.Header().Get(principal); got != tc.principal {
						t.Fatalf("principal %q, want %q", got, tc.principal)
					}
				}
			})
		}
	}

}

// Streaming: the same rules, and the principal reaches the handler.
func TestAuthConnectInterceptorStreaming(t *testing.T) {
	t.Parallel()
	full := connectServer(t, newAuth(t, nil))
	expiredJWT := signJWT(t, "HS256", []byte(hsSecret), claims("admin", map[string]any{"exp": authNow.Add(-time.Hour).Unix()}))
	for _, tc := range []struct {
		name   string
		header [2]string
		want   connect.Code
	}{
		{name: "no credential", want: connect.CodeUnauthenticated},
		{name: "read key", header: [2]string{"X-API-Key", readKey}},
		{name: "expired jwt", header: [2]string{"Authorization", "Bearer " + expiredJWT}, want: connect.CodeUnauthenticated},
	} {
		for _, protocol := range []string{"connect", "grpc"} {
			t.Run("stream "+tc.name+"/"+protocol, func(t *testing.T) {
				t.Parallel()
				var opts []connect.ClientOption
				if protocol == "grpc" {
					opts = append(opts, connect.WithGRPC())
				}
				client := connect.NewClient[emptypb.Empty, emptypb.Empty](full.Client(), full.URL+procWatchTasks, opts...)
				req := connect.NewRequest(&emptypb.Empty{})
				if tc.header[0] != "" {
					req.Header().Set(tc.header[0], tc.header[1])
				}
				stream, err := client.CallServerStream(context.Background(), req)
				if err == nil {
					n := 0
					for stream.Receive() {
						n++
					}
					err = stream.Err()
					if cerr := stream.Close(); err == nil {
						err = cerr
					}
					if err == nil && n != 1 {
						t.Fatalf("received %d messages, want 1", n)
					}
				}
				checkConnect(t, err, tc.want, "")
			})
		}
	}
}

// checkConnect checks an RPC's outcome: success when want is 0.
func checkConnect(t *testing.T, err error, want connect.Code, detail string) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("call failed: %v", err)
		}
		return
	}
	if got := connect.CodeOf(err); got != want {
		t.Fatalf("code %v (%v), want %v", got, err, want)
	}
	var cerr *connect.Error
	if errors.As(err, &cerr) && !strings.Contains(cerr.Message(), detail) {
		t.Fatalf("message %q, want it to contain %q", cerr.Message(), detail)
	}
}
