package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Middleware returns a handler that verifies each request with v before
// passing it to next. It reads the body (at most [Verifier.MaxBodyBytes]),
// checks it with [Verifier.Verify], and hands next the request with the
// same body bytes to read again. A request that fails verification gets 401,
// one whose body is too large 413, one whose body cannot be read 400; each
// with a short RFC 9457 problem document, and next is not called.
func Middleware(v *Verifier, next http.Handler) http.Handler {
	if v == nil || next == nil {
		panic("webhook: Middleware needs a Verifier and a next handler")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Reject unsigned requests before reading their body.
		if _, _, _, err := signingHeaders(r.Header); err != nil {
			writeProblem(w, http.StatusUnauthorized, err.Error())
			return
		}
		var body []byte
		if r.Body != nil {
			var err error
			body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, v.maxBodyBytes()))
			if err != nil {
				if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
					writeProblem(w, http.StatusRequestEntityTooLarge, "webhook: request body too large")
					return
				}
				writeProblem(w, http.StatusBadRequest, "webhook: reading the request body failed")
				return
			}
		}
		if err := v.Verify(r.Header, body); err != nil {
			writeProblem(w, http.StatusUnauthorized, err.Error())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		next.ServeHTTP(w, r)
	})
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
}
