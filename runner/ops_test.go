package runner_test

import (
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/runner"
)

func TestValidateEndpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("whsec_"+strings.Repeat("a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"HOOK_SECRET": "whsec_" + strings.Repeat("b", 32)}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for _, tc := range []struct {
		name string
		row  runner.HandlerEndpoint
		want string // "" valid, else a substring of the error
	}{
		{"http with placeholder", runner.HandlerEndpoint{Pattern: "pay.*", URL: "http://pay:8080/h/{callable}", Protocol: "http", BatchMax: 1}, ""},
		{"go needs no url", runner.HandlerEndpoint{Pattern: "local", Protocol: "go"}, ""},
		{"connect", runner.HandlerEndpoint{Pattern: "*", Namespace: "shop", URL: "http://svc:9000", Protocol: "connect"}, ""},
		{"env secret", runner.HandlerEndpoint{Pattern: "p", URL: "https://x/", Protocol: "http", SecretRef: "env:HOOK_SECRET"}, ""},
		{"file secret", runner.HandlerEndpoint{Pattern: "p", URL: "https://x/", Protocol: "http", SecretRef: "file:" + secretFile}, ""},
		{"other placeholder", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/{name}", Protocol: "http"}, "only the {callable} placeholder"},
		{"connect with placeholder", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/{callable}", Protocol: "grpc"}, "not supported"},
		{"unknown protocol", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "smtp"}, "protocol"},
		{"no url", runner.HandlerEndpoint{Pattern: "p", Protocol: "http"}, "URL"},
		{"bad glob", runner.HandlerEndpoint{Pattern: "pay[", URL: "http://x/", Protocol: "http"}, "not a valid glob"},
		{"unset env", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", SecretRef: "env:NOPE"}, "cannot be resolved"},
		{"missing file", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", SecretRef: "file:/nonexistent/secret"}, "secret_ref"},
		{"bad ref", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", SecretRef: "vault:x"}, "cannot be resolved"},
		{"negative", runner.HandlerEndpoint{Pattern: "p", URL: "http://x/", Protocol: "http", TimeoutMs: -1}, "must not be negative"},
	} {
		err := runner.ValidateEndpoint(tc.row, runner.SecretSource{LookupEnv: lookup, Dirs: []string{dir}, Logger: quietLogger()})
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

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A secret reference cannot tell which files or variables exist: every
// failure, whatever its reason, gives the caller the same message (the
// reason goes to the log, without the content).
func TestSecretRefErrorsAreUniform(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	okFile := write("ok", good+"\n")
	notSecret := write("config", "password=hunter2\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GOOD": good, "DATABASE_URL": "postgres://u:p@db/tasker", "EMPTY": ""}
	var logs strings.Builder
	src := runner.SecretSource{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Dirs:      []string{dir},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
	}
	for _, ref := range []string{"file:" + okFile, "env:GOOD"} {
		if s, err := src.Resolve(ref); err != nil || len(s) != 1 || s[0] != good {
			t.Errorf("%s: %v %v", ref, s, err)
		}
	}
	var want string
	for _, ref := range []string{
		"file:/etc/shadow", "file:/proc/self/environ", "file:/etc/passwd", "file:/nonexistent/secret",
		"file:" + filepath.Join(dir, "missing"), "file:" + dir, "file:" + filepath.Join(dir, "sub"),
		"file:" + notSecret, "file:" + filepath.Join(dir, "escape"), "file:" + dir + "/../" + filepath.Base(dir) + "/../../etc/passwd",
		"file:" + outside, "file:relative/path",
		"env:DATABASE_URL", "env:UNSET_VARIABLE", "env:EMPTY", "vault:x",
	} {
		_, err := src.Resolve(ref)
		if err == nil {
			t.Errorf("%s: resolved", ref)
			continue
		}
		msg := strings.Replace(err.Error(), strconv.Quote(ref), "REF", 1)
		if want == "" {
			want = msg
			if !strings.Contains(msg, "cannot be resolved") || !strings.Contains(msg, dir) {
				t.Errorf("message %q", msg)
			}
		}
		if msg != want {
			t.Errorf("%s: message differs:\n%s\nwant\n%s", ref, msg, want)
		}
		if strings.Contains(msg, "hunter2") || strings.Contains(msg, "postgres://") {
			t.Errorf("%s: message shows the content: %s", ref, msg)
		}
	}
	if l := logs.String(); strings.Contains(l, "hunter2") || strings.Contains(l, "u:p@db") || !strings.Contains(l, "secret_ref cannot be resolved") {
		t.Errorf("log: %s", l)
	}
}
