package openapi_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/callout/callouttest"
	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
	"github.com/tasker-runner/tasker-runner/openapi"

	"github.com/tasker-runner/tasker-runner/runner"
)

// internalService stands for a service only the runner can reach: it
// answers every request with a secret, and counts them.
func internalService(t *testing.T, status int) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
		_, _ = w.Write([]byte("AccessKeyId=AKIA-INTERNAL-SECRET\n"))
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

// The SSRF demo of issue 14: with the strict policy serve uses by default,
// a handler URL pointing at an internal address is refused at registration
// (REST and the Connect mirror alike), 422 naming the rule, whatever the
// spelling of the address.
func TestHandlerURLPolicyRefusesRegistration(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{urlPolicy: &callout.URLPolicy{}})
	internal, hits := internalService(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(internal.Listener.Addr().String())

	for _, c := range []struct {
		url, protocol, want string
	}{
		{internal.URL + "/{callable}", "", "body.url: 127.0.0.1 is a loopback address, refused by the handler URL policy (worker.callout.url_policy); allow it with allow_loopback or allow_cidrs"},
		{"http://localhost:" + port + "/", "", "localhost is a loopback host name"},
		{"http://169.254.169.254/latest/meta-data/", "", "body.url: 169.254.169.254 is a cloud metadata address, refused by the handler URL policy (worker.callout.url_policy); allow it with allow_cidrs"},
		{"http://2852039166/", "", "2852039166 (169.254.169.254) is a cloud metadata address"},
		{"http://[::ffff:169.254.169.254]/", "", "::ffff:169.254.169.254 (169.254.169.254) is a cloud metadata address"},
		{"http://169.254.1.1:8080/", "connect", "169.254.1.1 is a link-local address"},
		{"http://0.0.0.0:" + port, "grpc", "0.0.0.0 is an unspecified address"},
		{"ftp://files.internal/", "", `body.url: scheme "ftp" is not one of http, https, refused by the handler URL policy`},
		{"file:///etc/passwd", "", `scheme "file" is not one of http, https`},
	} {
		body := map[string]any{"url": c.url}
		if c.protocol != "" {
			body["protocol"] = c.protocol
		}
		p := e.problem(http.MethodPut, "/v1/handlers/internal.read", body, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Location != "body.url" || !strings.Contains(p.Errors[0].Location+": "+p.Errors[0].Message, c.want) {
			t.Errorf("%s: %s\nwant %s", c.url, p, c.want)
		}
	}
	var list apiPage[map[string]any]
	e.do(http.MethodGet, "/v1/handlers", nil, http.StatusOK, &list)
	if len(list.Items) != 0 {
		t.Fatalf("refused endpoints were stored: %v", list.Items)
	}

	// A private address is where handlers live: allowed.
	e.do(http.MethodPut, "/v1/handlers/pay.*", map[string]any{"url": "http://10.20.30.40:8080/{callable}"}, http.StatusCreated, nil)

	// The Connect mirror refuses the same way.
	base, _ := serveMirrorConfig(t, openapi.Config{Version: "test", Client: runner.NewClient(e.pool, runner.ClientConfig{}), URLPolicy: &callout.URLPolicy{}}, nil)
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	_, err := client.PutHandler(t.Context(), connect.NewRequest(&adminv1.PutHandlerRequest{
		Pattern: "internal.read", Endpoint: &adminv1.HandlerEndpointInput{Url: "http://2852039166/"},
	}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "2852039166 (169.254.169.254) is a cloud metadata address, refused by the handler URL policy") {
		t.Fatalf("mirror: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal service got %d requests", n)
	}
}

// A host name passes registration (what it resolves to can change), and
// the runner's dialler judges the address it actually connects to: a name
// resolving to loopback fails the step with handler_url_refused naming the
// rule, and the internal service never sees a request.
func TestHandlerURLPolicyRefusesAtCallTime(t *testing.T) {
	t.Parallel()
	internal, hits := internalService(t, http.StatusOK)
	_, port, _ := net.SplitHostPort(internal.Listener.Addr().String())
	policy := &callout.URLPolicy{}
	hc := callout.NewClient(callout.NewTransport(callout.TransportOptions{URLPolicy: policy, Resolver: callouttest.Resolver(t, netip.MustParseAddr("127.0.0.1"))}))
	t.Cleanup(hc.CloseIdleConnections)
	e := newAPIEnv(t, envOptions{runner: true, urlPolicy: policy, client: hc})

	e.do(http.MethodPut, "/v1/handlers/internal.*", map[string]any{"url": "http://internal.rebind.test:" + port + "/{callable}"}, http.StatusCreated, nil)
	e.waitEndpoint("internal.*")
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": internalTemplate}, http.StatusCreated, nil)
	var sub apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "ssrf", "name": "probe"}, http.StatusCreated, &sub)
	task := e.waitTask(sub.TaskUUID, "blocked_by_failures")
	last := string(task.step("read").LastError)
	for _, want := range []string{`"error_type":"handler_url_refused"`, `"retryable":false`,
		"127.0.0.1 is a loopback address, refused by the handler URL policy (worker.callout.url_policy)", "internal.rebind.test"} {
		if !strings.Contains(last, want) {
			t.Errorf("last_error %s lacks %s", last, want)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the internal service got %d requests", n)
	}
}

const internalTemplate = `
name: probe
namespace_name: ssrf
version: 1.0.0
steps:
  - name: read
    handler: {callable: internal.read}
    retry: {max_attempts: 1}
`

// The start of a reply that is not a step result is kept with the step's
// error, but only admin-scoped callers read it: a read-scoped caller gets
// the error with a note instead, from every operation that returns steps,
// over REST and the Connect mirror alike.
func TestReplyExcerptNeedsAdminScope(t *testing.T) {
	t.Parallel()
	internal, hits := internalService(t, http.StatusNotFound)
	e := newAPIEnv(t, envOptions{runner: true, auth: newAuth(t, nil), urlPolicy: &callout.URLPolicy{AllowLoopback: true}})
	admin := []string{"Authorization", "Bearer " + adminKey}
	reader := []string{"Authorization", "Bearer " + readKey}
	const secret = "AKIA-INTERNAL-SECRET"

	e.do(http.MethodPut, "/v1/handlers/internal.*", map[string]any{"url": internal.URL + "/{callable}"}, http.StatusCreated, nil, admin...)
	e.waitEndpoint("internal.*")
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": internalTemplate}, http.StatusCreated, nil, admin...)
	var sub apiTask
	e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "ssrf", "name": "probe"}, http.StatusCreated, &sub, admin...)
	var task apiTask
	waitFor(t, 20*time.Second, "the task to fail", func() bool {
		e.do(http.MethodGet, "/v1/tasks/"+sub.TaskUUID, nil, http.StatusOK, &task, reader...)
		return task.State == "blocked_by_failures"
	})
	if hits.Load() != 1 {
		t.Fatalf("%d calls", hits.Load())
	}
	stepID := task.step("read").StepUUID

	for _, path := range []string{
		"/v1/tasks/" + sub.TaskUUID + "?include=transitions",
		"/v1/steps/" + stepID + "?include=transitions",
		"/v1/dead-letters?namespace=ssrf",
	} {
		_, _, asReader := e.call(http.MethodGet, path, nil, reader...)
		if strings.Contains(string(asReader), secret) || strings.Contains(string(asReader), callout.MetadataResponseExcerpt) {
			t.Errorf("%s as reader shows the excerpt: %s", path, asReader)
		}
		if !strings.Contains(string(asReader), "handler at "+internal.URL+"/internal.read answered 404 Not Found (reply excerpt hidden: needs admin scope)") {
			t.Errorf("%s as reader lacks the note: %s", path, asReader)
		}
		_, _, asAdmin := e.call(http.MethodGet, path, nil, admin...)
		if !strings.Contains(string(asAdmin), `"`+callout.MetadataResponseExcerpt+`":"AccessKeyId=`+secret+`"`) {
			t.Errorf("%s as admin lacks the excerpt: %s", path, asAdmin)
		}
		if strings.Contains(string(asAdmin), "excerpt hidden") {
			t.Errorf("%s as admin: %s", path, asAdmin)
		}
	}

	// The Connect mirror answers as REST does.
	auth := newAuth(t, nil)
	base, _ := serveMirrorConfig(t, openapi.Config{Version: "test", Client: runner.NewClient(e.pool, runner.ClientConfig{})}, auth)
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	getTask := func(key string) string {
		req := connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: sub.TaskUUID, Include: []string{"transitions"}})
		req.Header().Set("Authorization", "Bearer "+key)
		resp, err := client.GetTask(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return protojson.Format(resp.Msg)
	}
	if got := getTask(readKey); strings.Contains(got, secret) || !strings.Contains(got, "reply excerpt hidden: needs admin scope") {
		t.Errorf("mirror as reader: %s", got)
	}
	if got := getTask(adminKey); !strings.Contains(got, secret) {
		t.Errorf("mirror as admin: %s", got)
	}
	dlReq := connect.NewRequest(&adminv1.ListDeadLettersRequest{Namespace: "ssrf"})
	dlReq.Header().Set("Authorization", "Bearer "+readKey)
	dl, err := client.ListDeadLetters(context.Background(), dlReq)
	if err != nil {
		t.Fatal(err)
	}
	if got := protojson.Format(dl.Msg); strings.Contains(got, secret) || !strings.Contains(got, "excerpt hidden") {
		t.Errorf("mirror dead letters as reader: %s", got)
	}
}

// secret_ref cannot be used to probe the host: files outside the secret
// directories, missing files, directories, and variables that are set but
// hold no secret all answer the same 422.
func TestSecretRefRegistrationIsUniform(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t, envOptions{env: map[string]string{"DATABASE_URL": "postgres://u:p@db/x"}})
	var want string
	for _, ref := range []string{
		"file:/etc/shadow", "file:/proc/self/environ", "file:/etc/hostname", "file:/nonexistent/secret",
		"file:/run/secrets/../../etc/passwd", "file:/tmp", "env:DATABASE_URL", "env:NOT_SET_ANYWHERE",
	} {
		p := e.problem(http.MethodPut, "/v1/handlers/pay.*", map[string]any{"url": "http://pay:8080/", "secret_ref": ref}, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Location != "body.secret_ref" {
			t.Fatalf("%s: %s", ref, p)
		}
		msg := strings.Replace(p.Errors[0].Message, `"`+ref+`"`, "REF", 1)
		if want == "" {
			want = msg
		}
		if msg != want || !strings.Contains(msg, "cannot be resolved") || strings.Contains(msg, "postgres://") {
			t.Errorf("%s: %q\nwant %q", ref, msg, want)
		}
	}
}
