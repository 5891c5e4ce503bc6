package openapi

import (
	_ "embed"
	"net/http"
)

// docsPage is a self-contained API reference: a small page whose inline
// script reads /openapi.json and renders every operation and schema. It
// loads nothing from elsewhere, so it works air-gapped.
//
//go:embed docs/index.html
var docsPage []byte

func (s *Server) registerDocs() {
	s.mux.HandleFunc("GET /docs", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		// The page runs only its own inline script and talks only to us.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(docsPage)
	})
}
