package auth

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

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

// writeProblem answers e as an RFC 9457 problem document.
func writeProblem(w http.ResponseWriter, e *authError) {
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
