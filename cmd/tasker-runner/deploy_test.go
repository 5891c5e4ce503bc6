package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"

	"github.com/tasker-runner/tasker-runner/openapi"
)

// TestDeployProbePaths checks that the probe paths of deploy/kubernetes and
// the health paths the deploy docs name are routes of the
// real API (package deploy may not import openapi, so this half lives here).
func TestDeployProbePaths(t *testing.T) {
	b, err := os.ReadFile("../../deploy/kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	paths := map[string]bool{"/health/live": true, "/health/ready": true}
	for _, m := range regexp.MustCompile(`(?m)^\s*path:\s*(\S+)\s*$`).FindAllSubmatch(b, -1) {
		paths[string(m[1])] = true
	}
	h := openapi.New(openapi.Config{}).Handler()
	for p := range paths {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200: %s", p, rec.Code, rec.Body)
		}
	}
}
