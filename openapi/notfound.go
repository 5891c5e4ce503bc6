package openapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// problemMux serves a ServeMux, answering what matches no route with an
// RFC 9457 problem instead of the mux's plain text: 404 for an unknown path
// (such as /v1/tasks/ or /v1/nope) and 405, keeping the Allow header, for a
// known path with another method (DELETE /v1/status).
type problemMux struct{ mux *http.ServeMux }

func (p problemMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, pattern := p.mux.Handler(r)
	if pattern != "" {
		p.mux.ServeHTTP(w, r)
		return
	}
	// The mux's own answer tells 404 from 405 and sets Allow; its body is
	// replaced.
	rec := &statusRecorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	status := rec.status
	detail := fmt.Sprintf("there is no operation at %s %s; the operations are listed in /openapi.yaml", r.Method, r.URL.Path)
	switch status {
	case http.StatusMethodNotAllowed:
		allow := rec.header.Get("Allow")
		w.Header().Set("Allow", allow)
		detail = fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow)
	case http.StatusNotFound:
	default:
		// Not an answer of an unmatched request (the mux may grow other
		// ones): pass it on as it is.
		p.mux.ServeHTTP(w, r)
		return
	}
	body, _ := json.Marshal(&huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if !strings.EqualFold(r.Method, http.MethodHead) {
		_, _ = w.Write(body)
	}
}

// statusRecorder records a handler's status and headers, dropping its body.
type statusRecorder struct {
	header http.Header
	status int
}

func (s *statusRecorder) Header() http.Header { return s.header }

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}
