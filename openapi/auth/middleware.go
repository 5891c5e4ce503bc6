package auth

import (
	"net/http"
	"path"
	"strings"
)

// Middleware requires credentials on every path but the public ones (see
// the package documentation) and puts the [Principal] in the request's
// context. Refusals are RFC 9457 problem documents: 401 with a
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
			writeProblem(w, aerr)
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
