package app

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestServeStartsWithAnUnresolvableSecret: serve starts although one
// endpoint in the database has a secret_ref it cannot resolve (it used to
// refuse to start); `status` and `handlers list` say which endpoint is
// unusable and why; registered again with a secret serve resolves, it is
// usable again without a restart.
func TestServeStartsWithAnUnresolvableSecret(t *testing.T) {
	t.Parallel()
	vars, addr := clitest.WebVars(t)
	url := pgtest.URL(t)
	vars["DATABASE_URL"] = url
	vars["TASKER_WORKER_CALLOUT_URL_POLICY_ALLOW_LOOPBACK"] = "true"
	vars["HOOK_SECRET"] = webhook.NewSecret()
	db, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	client := runner.NewClient(db, runner.ClientConfig{})
	for _, row := range []runner.HandlerEndpoint{
		{Namespace: "shop", Pattern: "pay.*", URL: "http://127.0.0.1:1/", Protocol: "http", SecretRef: "file:/run/secrets/not-mounted-here"},
		{Pattern: "mail.*", URL: "http://127.0.0.1:1/", Protocol: "http"},
	} {
		if _, err := client.PutEndpoint(t.Context(), row, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	c := clitest.Start(t, vars, "serve")
	c.WaitHealthy(addr, clitest.StartupTimeout)
	if l := c.Stderr.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "handler endpoint unusable") || !strings.Contains(l, "pay.*") {
		t.Errorf("serve does not log the unusable endpoint:\n%s", l)
	}

	api := map[string]string{"TASKER_API_URL": "http://" + addr}
	unusable := `UNUSABLE pay.* (namespace shop), its steps wait: secret_ref "file:/run/secrets/not-mounted-here": cannot be resolved`
	for _, args := range [][]string{{"status"}, {"handlers", "list"}} {
		r := clitest.Run(t, api, args...)
		if r.Code != 0 || !strings.Contains(r.Stdout, unusable) || strings.Contains(r.Stdout, "UNUSABLE mail.*") {
			t.Errorf("%v does not show pay.* (only) as unusable: %v", args, r)
		}
	}

	r := clitest.Run(t, api, "handlers", "put", "pay.*", "--namespace", "shop", "--url", "http://127.0.0.1:1/", "--secret-ref", "env:HOOK_SECRET")
	if r.Code != 0 {
		t.Fatalf("handlers put: %v", r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = clitest.Run(t, api, "handlers", "list")
		if r.Code == 0 && !strings.Contains(r.Stdout, "UNUSABLE") && strings.Contains(r.Stdout, "pay.*") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pay.* still unusable after it was put again with a secret serve resolves: %v", r)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-c.Done():
			t.Fatalf("serve exited")
		}
	}
	c.Stop(syscall.SIGTERM)
}
