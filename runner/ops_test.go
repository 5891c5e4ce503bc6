package runner_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

func TestValidateEndpoint(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("whsec_"+strings.Repeat("a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOOK_SECRET": "whsec_" + strings.Repeat("b", 32)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		name string
		row  store.HandlerEndpoint
		want string // "" valid, else a substring of the error
	}{
		{"http with placeholder", store.HandlerEndpoint{Pattern: "pay.*", URL: "http://pay:8080/h/{callable}", Protocol: "http", BatchMax: 1}, ""},
		{"go needs no url", store.HandlerEndpoint{Pattern: "local", Protocol: "go"}, ""},
		{"connect", store.HandlerEndpoint{Pattern: "*", Namespace: "shop", URL: "http://svc:9000", Protocol: "connect"}, ""},
		{"env secret", store.HandlerEndpoint{Pattern: "p", URL: "https://x/", Protocol: "http", SecretRef: "env:HOOK_SECRET"}, ""},
		{"file secret", store.HandlerEndpoint{Pattern: "p", URL: "https://x/", Protocol: "http", SecretRef: "file:" + secretFile}, ""},
		{"other placeholder", store.HandlerEndpoint{Pattern: "p", URL: "http://x/{name}", Protocol: "http"}, "only the {callable} placeholder"},
		{"connect with placeholder", store.HandlerEndpoint{Pattern: "p", URL: "http://x/{callable}", Protocol: "grpc"}, "not supported"},
		{"unknown protocol", store.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "smtp"}, "protocol"},
		{"no url", store.HandlerEndpoint{Pattern: "p", Protocol: "http"}, "URL"},
		{"bad glob", store.HandlerEndpoint{Pattern: "pay[", URL: "http://x/", Protocol: "http"}, "not a valid glob"},
		{"unset env", store.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", SecretRef: "env:NOPE"}, "not set"},
		{"missing file", store.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", SecretRef: "file:/nonexistent/secret"}, "secret_ref"},
		{"bad ref", store.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", SecretRef: "vault:x"}, "want env:NAME or file:/path"},
		{"negative", store.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", TimeoutMs: -1}, "must not be negative"},
	} {
		err := runner.ValidateEndpoint(tc.row, lookup)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.want)
		case err != nil && strings.HasPrefix(err.Error(), "endpoints["):
			t.Errorf("%s: the message keeps the registry's list index: %v", tc.name, err)
		}
	}
}
