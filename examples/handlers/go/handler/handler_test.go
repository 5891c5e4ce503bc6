package handler_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/callout/conformance"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
	"github.com/tasker-runner/tasker-runner/examples/handlers/go/handler"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The schemas of contracts/schema, to check every answer against.
const schemaBase = "https://raw.githubusercontent.com/tasker-runner/tasker-runner/main/contracts/schema/"

var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	names := []string{"step-result.schema.json", "batch-response.schema.json"}
	dir := filepath.Join("..", "..", "..", "..", "contracts", "schema")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(schemaBase+e.Name(), doc); err != nil {
			return nil, err
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, n := range names {
		s, err := c.Compile(schemaBase + n)
		if err != nil {
			return nil, err
		}
		out[n] = s
	}
	return out, nil
})

func checkSchema(t *testing.T, name string, body []byte) {
	t.Helper()
	all, err := schemas()
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("answer %q is not JSON: %v", body, err)
	}
	if err := all[name].Validate(inst); err != nil {
		t.Errorf("answer %s does not match %s: %v", body, name, err)
	}
}

// start serves the example on a loopback port.
func start(t *testing.T, secrets ...string) string {
	t.Helper()
	h, err := handler.New(handler.Options{Secrets: secrets, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// envelope builds the envelope of a step of the order-fulfilment workflow.
func envelope(callable string, attempt int, context string, deps map[string]string) *contracts.StepEnvelope {
	env := &contracts.StepEnvelope{
		EventID: uuid.NewString(),
		Task: contracts.TaskInfo{
			TaskUUID: uuid.NewString(), Namespace: "order_fulfillment", Name: "order_fulfillment", Version: "1.0.0",
			Context: json.RawMessage(context), CorrelationID: uuid.NewString(), Tags: []string{},
		},
		Step: contracts.StepInfo{
			StepUUID: uuid.NewString(), Name: callable[strings.LastIndex(callable, ".")+1:],
			Attempts: attempt, MaxAttempts: 3, Retryable: true, Inputs: json.RawMessage(`{}`),
		},
		StepDefinition:    contracts.StepDefinition{Handler: contracts.HandlerDefinition{Callable: callable}, Dependencies: []string{}},
		DependencyResults: map[string]contracts.StepResult{},
	}
	env.Step.TemplateStepName = env.Step.Name
	for name, result := range deps {
		env.StepDefinition.Dependencies = append(env.StepDefinition.Dependencies, name)
		env.DependencyResults[name] = contracts.StepResult{Success: true, Status: "completed", Result: json.RawMessage(result)}
	}
	return env
}

// post sends body as the runner would (optionally signed) and returns the
// answer.
func post(t *testing.T, url string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const goodOrder = `{"order": {"id": "ord-1", "total": 125.5, "currency": "EUR", "address": "1 Main St", "items": [{"sku": "kb-42", "quantity": 1}]}}`

func TestSingleSteps(t *testing.T) {
	t.Parallel()
	base := start(t)
	tests := []struct {
		name       string
		env        *contracts.StepEnvelope
		path       string
		status     int
		retryAfter string
		success    bool
		errorType  string
		retryable  bool
		result     string // a fragment of result
	}{
		{name: "validate a good order", env: envelope("order_fulfillment.validate_order", 1, goodOrder, nil),
			status: 200, success: true, result: `"valid":true`},
		{name: "validate an empty order", env: envelope("order_fulfillment.validate_order", 1, `{"order": {}}`, nil),
			status: 200, success: true, result: `"valid":false`},
		{name: "charge a valid order", env: envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": true}`}),
			status: 200, success: true, result: `"amount":125.5`},
		{name: "charge through POST /{callable}", path: "/order_fulfillment.charge",
			env:    envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": true}`}),
			status: 200, success: true, result: `"currency":"EUR"`},
		{name: "charge an invalid order: business failure in a 200",
			env:    envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": false}`}),
			status: 200, errorType: "order_invalid"},
		{name: "charge without validate_order", env: envelope("order_fulfillment.charge", 1, goodOrder, nil),
			status: 200, errorType: "order_invalid"},
		{name: "charge too much: declined",
			env:    envelope("order_fulfillment.charge", 1, `{"order": {"total": 20000}}`, map[string]string{"validate_order": `{"valid": true}`}),
			status: 200, errorType: "card_declined"},
		{name: "reserve stock, first attempt: 503 and Retry-After", env: envelope("order_fulfillment.reserve_stock", 1, goodOrder, nil),
			status: 503, retryAfter: "1", errorType: "warehouse_busy", retryable: true},
		{name: "reserve stock, second attempt", env: envelope("order_fulfillment.reserve_stock", 2, goodOrder, nil),
			status: 200, success: true, result: `"attempt":2`},
		{name: "ship without an address: 422", env: envelope("order_fulfillment.ship", 1, `{"order": {"total": 1}}`, nil),
			status: 422, errorType: "no_address"},
		{name: "ship", env: envelope("order_fulfillment.ship", 1, goodOrder, nil), status: 200, success: true, result: `"address":"1 Main St"`},
		{name: "context that is not an order", env: envelope("order_fulfillment.ship", 1, `{"order": 7}`, nil),
			status: 200, errorType: "invalid_context"},
		{name: "echo", env: envelope("conformance.echo", 3, `{}`, nil), status: 200, success: true, result: `"attempt":3`},
		{name: "unknown callable: 404", env: envelope("order_fulfillment.teleport", 1, `{}`, nil),
			status: 404, errorType: "handler_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := post(t, base+tt.path, mustJSON(t, tt.env), nil)
			if resp.StatusCode != tt.status || resp.Header.Get("Retry-After") != tt.retryAfter {
				t.Fatalf("answered %s (Retry-After %q) with %s; want %d (Retry-After %q)",
					resp.Status, resp.Header.Get("Retry-After"), body, tt.status, tt.retryAfter)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			checkSchema(t, "step-result.schema.json", body)
			var res contracts.StepResult
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			if res.Success != tt.success || res.StepUUID != tt.env.Step.StepUUID {
				t.Errorf("success %v, step_uuid %q; want %v, %q: %s", res.Success, res.StepUUID, tt.success, tt.env.Step.StepUUID, body)
			}
			if tt.success {
				if !strings.Contains(string(res.Result), tt.result) || res.Error != nil {
					t.Errorf("result %s, want one with %s and no error", body, tt.result)
				}
				return
			}
			if res.Status != "failed" || res.Error == nil || res.Error.ErrorType != tt.errorType || res.Error.Retryable != tt.retryable || res.Error.Message == "" {
				t.Errorf("answer %s; want a failure of type %s, retryable %v", body, tt.errorType, tt.retryable)
			}
		})
	}
}

func TestChargeIsIdempotentOnStepUUID(t *testing.T) {
	t.Parallel()
	base := start(t)
	env := envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": true}`})
	var ids []string
	for attempt := 1; attempt <= 2; attempt++ {
		env.Step.Attempts, env.EventID = attempt, uuid.NewString()
		_, body := post(t, base, mustJSON(t, env), nil)
		var res struct {
			Result struct {
				ChargeID string `json:"charge_id"`
			} `json:"result"`
		}
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Result.ChargeID)
	}
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("charge ids %q: want one id for both attempts", ids)
	}
}

func TestBatch(t *testing.T) {
	t.Parallel()
	base := start(t)
	envs := []*contracts.StepEnvelope{
		envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": true}`}),
		envelope("order_fulfillment.reserve_stock", 1, goodOrder, nil),
		envelope("order_fulfillment.ship", 1, `{}`, nil),
		envelope("nope.nothing", 1, `{}`, nil),
	}
	resp, body := post(t, base+"/", mustJSON(t, map[string]any{"steps": envs}), http.Header{"Tasker-Batch-Size": {"4"}})
	if resp.StatusCode != 200 {
		t.Fatalf("answered %s: %s", resp.Status, body)
	}
	checkSchema(t, "batch-response.schema.json", body)
	var out struct {
		Results []contracts.StepResult `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != len(envs) {
		t.Fatalf("%d results for %d steps: %s", len(out.Results), len(envs), body)
	}
	byUUID := map[string]contracts.StepResult{}
	for _, r := range out.Results {
		byUUID[r.StepUUID] = r
	}
	charge, busy, ship, missing := byUUID[envs[0].Step.StepUUID], byUUID[envs[1].Step.StepUUID], byUUID[envs[2].Step.StepUUID], byUUID[envs[3].Step.StepUUID]
	if !charge.Success {
		t.Errorf("charge: %+v", charge)
	}
	if busy.Success || busy.Error == nil || !busy.Error.Retryable || busy.Error.StatusCode != 503 ||
		busy.OrchestrationMetadata == nil || busy.OrchestrationMetadata.BackoffHint == nil || busy.OrchestrationMetadata.BackoffHint.DelaySeconds != 1 {
		t.Errorf("reserve_stock: want a retryable 503 failure with a 1s backoff hint, got %s", mustJSON(t, busy))
	}
	if ship.Success || ship.Error == nil || ship.Error.Retryable || ship.Error.StatusCode != 422 {
		t.Errorf("ship: want a permanent 422 failure, got %s", mustJSON(t, ship))
	}
	if missing.Success || missing.Error == nil || missing.Error.ErrorType != "handler_not_found" {
		t.Errorf("unknown callable: %s", mustJSON(t, missing))
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	base := start(t)
	for _, body := range []string{``, `not json`, `[1,2]`, `{"task": 5}`} {
		resp, out := post(t, base, []byte(body), nil)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: answered %s, want 400", body, resp.Status)
			continue
		}
		checkSchema(t, "step-result.schema.json", out)
	}
	resp, err := http.Get(base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /health: %s", resp.Status)
	}
	resp, _ = post(t, base, bytes.Repeat([]byte(" "), handler.MaxBodyBytes+1), nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("oversized body: %s, want 400", resp.Status)
	}
}

// TestThroughTheRunnersInvoker calls the example the way the runner does,
// signed, and checks what the runner would record.
func TestThroughTheRunnersInvoker(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	base := start(t, secret)
	signer, err := callout.NewRequestSigner([]string{secret})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(h http.Header, id string, ts time.Time, body []byte) error {
		signer.Sign(h, id, ts, body)
		return nil
	}
	inv, err := callout.NewHTTP(callout.HTTPConfig{URL: base + "/{callable}", Sign: sign, Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	res := inv.Invoke(ctx, envelope("order_fulfillment.charge", 1, goodOrder, map[string]string{"validate_order": `{"valid": true}`}))
	if !res.Success {
		t.Errorf("charge: %+v", res.Error)
	}
	res = inv.Invoke(ctx, envelope("order_fulfillment.reserve_stock", 1, goodOrder, nil))
	if res.Success || !res.Error.Retryable || res.Error.StatusCode != 503 ||
		res.OrchestrationMetadata == nil || res.OrchestrationMetadata.BackoffRequestSeconds == nil || *res.OrchestrationMetadata.BackoffRequestSeconds != 1 {
		t.Errorf("reserve_stock: want a retryable 503 with a 1s backoff, got %s", mustJSON(t, res))
	}
	res = inv.Invoke(ctx, envelope("order_fulfillment.ship", 1, `{}`, nil))
	if res.Success || res.Error.Retryable || res.Error.StatusCode != 422 || res.Error.ErrorType != "no_address" {
		t.Errorf("ship: want a permanent no_address failure, got %s", mustJSON(t, res))
	}
	results := inv.InvokeBatch(ctx, []*contracts.StepEnvelope{
		envelope("conformance.echo", 1, `{}`, nil), envelope("order_fulfillment.reserve_stock", 2, `{}`, nil),
	})
	for i, r := range results {
		if !r.Success {
			t.Errorf("batch item %d: %+v", i, r.Error)
		}
	}

	// Unsigned and forged requests never reach a step.
	unsigned, err := callout.NewHTTP(callout.HTTPConfig{URL: base, Client: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	res = unsigned.Invoke(ctx, envelope("conformance.echo", 1, `{}`, nil))
	if res.Success || res.Error.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned: want 401, got %s", mustJSON(t, res))
	}
	forged, err := callout.NewHTTP(callout.HTTPConfig{URL: base, Client: &http.Client{},
		Sign: func(h http.Header, id string, ts time.Time, body []byte) error {
			signer.Sign(h, id, ts, append(bytes.Clone(body), ' '))
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	res = forged.Invoke(ctx, envelope("conformance.echo", 1, `{}`, nil))
	if res.Success || res.Error.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged: want 401, got %s", mustJSON(t, res))
	}
}

// TestConformance runs tasker-runner's conformance suite against the
// example: every case passes, signed or not, over its callables.
func TestConformance(t *testing.T) {
	t.Parallel()
	secret := webhook.NewSecret()
	tests := []struct {
		name    string
		url     string
		cfg     conformance.Config
		skipped int
	}{
		// Without --decision, --batchable and --yielding the 3 dynamic cases skip.
		{"unsigned", start(t) + "/{callable}", conformance.Config{Batch: true}, 4 + 3},
		{"signed", start(t, secret), conformance.Config{Batch: true, Secret: secret}, 3},
		{"charge", start(t), conformance.Config{Callable: "order_fulfillment.charge", Context: json.RawMessage(goodOrder)}, 5 + 3},
		{"reserve_stock", start(t, secret), conformance.Config{Callable: "order_fulfillment.reserve_stock", Secret: secret, Batch: true}, 3},
		// The approval's decision, the ETL's split and its worker, which
		// yields every 20 rows of its 50.
		{"dynamic", start(t, secret), conformance.Config{
			Secret: secret, Batch: true, Decision: "approval.route", Batchable: "etl.analyze", Yielding: "etl.transform",
			Context: json.RawMessage(`{"request": {"amount": 7500}, "etl": {"rows": 100, "workers": 2, "checkpoint_every": 20}}`),
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			cfg.URL, cfg.Timeout = tt.url, 5*time.Second
			rep, err := conformance.Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Skipped != tt.skipped || rep.Passed != len(conformance.Cases())-tt.skipped {
				for _, c := range rep.Cases {
					t.Errorf("%s %s: %s", c.Status, c.Name, c.Reason)
				}
			}
		})
	}
}

func TestNewRejectsBadSecret(t *testing.T) {
	t.Parallel()
	if _, err := handler.New(handler.Options{Secrets: []string{"not-a-secret"}}); err == nil {
		t.Error("New accepted a malformed secret")
	}
}

func ExampleFailure() {
	steps := map[string]handler.StepFunc{
		"payments.refund": func(_ context.Context, env *contracts.StepEnvelope) (any, error) {
			if env.Step.Attempts < 3 {
				return nil, &handler.Failure{Type: "gateway_busy", Message: "try later", Retryable: true, Status: 503, RetryAfter: 5 * time.Second}
			}
			return map[string]string{"refund_id": "rf_" + env.Step.StepUUID}, nil
		},
	}
	h, _ := handler.New(handler.Options{Steps: steps, Logger: slog.New(slog.DiscardHandler)})
	env := envelope("payments.refund", 1, `{}`, nil)
	env.Step.StepUUID = "0193a0b2-0000-7000-8000-000000000002"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(must(json.Marshal(env)))))
	var res contracts.StepResult
	_ = json.Unmarshal(rec.Body.Bytes(), &res)
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"))
	fmt.Printf("%s %s %s\n", res.StepUUID, res.Status, must(json.Marshal(res.Error)))
	fmt.Printf("%s\n", must(json.Marshal(res.OrchestrationMetadata)))
	// Output:
	// 503 5
	// 0193a0b2-0000-7000-8000-000000000002 failed {"message":"try later","error_type":"gateway_busy","retryable":true,"status_code":503}
	// {"backoff_hint":{"delay_seconds":5,"backoff_type":"server_requested"}}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
