package contracts_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
)

const staleHint = "contracts/gen is stale: run `make generate` (or `bash .ci/generate-contracts`) and commit the result"

// manifest is contracts/gen/CHECKSUMS, written by .ci/generate-contracts.
type manifest struct {
	tools   map[string]string // tool -> version
	inputs  map[string]string // path relative to contracts/ -> sha256
	outputs map[string]string
}

func readManifest(t *testing.T) manifest {
	t.Helper()
	f, err := os.Open(filepath.Join("gen", "CHECKSUMS"))
	if err != nil {
		t.Fatalf("%v: %s", err, staleHint)
	}
	defer f.Close()
	m := manifest{tools: map[string]string{}, inputs: map[string]string{}, outputs: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			t.Fatalf("gen/CHECKSUMS: malformed line %q: %s", line, staleHint)
		}
		switch fields[0] {
		case "tool":
			m.tools[fields[1]] = fields[2]
		case "input":
			m.inputs[fields[2]] = fields[1]
		case "output":
			m.outputs[fields[2]] = fields[1]
		default:
			t.Fatalf("gen/CHECKSUMS: unknown entry %q: %s", line, staleHint)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// hashTree hashes every regular file under dir (relative to contracts/)
// accepted by keep, keyed by slash-separated path.
func hashTree(t *testing.T, dir string, keep func(path string) bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !keep(path) {
			return err
		}
		out[filepath.ToSlash(path)] = hashFile(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hashFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// diffHashes reports every path added, removed or changed between the
// manifest (want) and the tree (got).
func diffHashes(what string, want, got map[string]string) []string {
	var ds []string
	for p, h := range got {
		switch w, ok := want[p]; {
		case !ok:
			ds = append(ds, what+" "+p+" is not in the manifest")
		case w != h:
			ds = append(ds, what+" "+p+" changed since the last generation")
		}
	}
	for p := range want {
		if _, ok := got[p]; !ok {
			ds = append(ds, what+" "+p+" is in the manifest but missing")
		}
	}
	slices.Sort(ds)
	return ds
}

// The committed generated code matches its inputs: the .proto files and buf
// configuration are those it was generated from, the generated files were not
// edited, and the plugins that wrote them are the versions in go.mod. Running
// buf here would be slow and need a build of buf, so .ci/generate-contracts
// records checksums of inputs and outputs in gen/CHECKSUMS and this test
// recomputes them.
func TestGeneratedCodeIsFresh(t *testing.T) {
	t.Parallel()
	m := readManifest(t)

	inputs := hashTree(t, "proto", func(p string) bool { return strings.HasSuffix(p, ".proto") })
	for _, f := range []string{"buf.yaml", "buf.gen.yaml"} {
		inputs[f] = hashFile(t, f)
	}
	outputs := hashTree(t, "gen", func(p string) bool { return filepath.Base(p) != "CHECKSUMS" })

	problems := append(diffHashes("input", m.inputs, inputs), diffHashes("output", m.outputs, outputs)...)

	// The plugins must be the module versions the generated code runs with.
	deps := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			deps[d.Path] = d.Version
		}
	}
	for tool, mod := range map[string]string{
		"protoc-gen-go":         "google.golang.org/protobuf",
		"protoc-gen-connect-go": "connectrpc.com/connect",
	} {
		if v, ok := deps[mod]; ok && v != m.tools[tool] {
			problems = append(problems, tool+" "+m.tools[tool]+" generated the code but go.mod has "+mod+" "+v)
		}
	}
	script, err := os.ReadFile(filepath.Join("..", ".ci", "generate-contracts"))
	if err != nil {
		t.Fatal(err)
	}
	if v := regexp.MustCompile(`(?m)^BUF_VERSION=(\S+)$`).FindSubmatch(script); v == nil || string(v[1]) != m.tools["buf"] {
		problems = append(problems, "the buf version in .ci/generate-contracts differs from the one in gen/CHECKSUMS")
	}

	if len(problems) > 0 {
		t.Fatalf("%s:\n  %s", staleHint, strings.Join(problems, "\n  "))
	}
}

// The Connect procedure paths are the ones contracts/README.md documents.
func TestProcedurePaths(t *testing.T) {
	t.Parallel()
	if got := handlerv1connect.HandlerServiceExecuteProcedure; got != "/tasker.handler.v1.HandlerService/Execute" {
		t.Errorf("Execute procedure is %s", got)
	}
	if got := handlerv1connect.HandlerServiceExecuteBatchProcedure; got != "/tasker.handler.v1.HandlerService/ExecuteBatch" {
		t.Errorf("ExecuteBatch procedure is %s", got)
	}
}

// fullEnvelope has every field of the JSON envelope set to a non-zero value,
// including a dependency result with every field of a result.
func fullEnvelope() contracts.StepEnvelope {
	return contracts.StepEnvelope{
		EventID: "0193a0b2-7c1d-7e3f-8a4b-5c6d7e8f9a0b",
		Task: contracts.TaskInfo{
			TaskUUID:            "0193a0b2-0000-7000-8000-000000000001",
			Namespace:           "payments",
			Name:                "order_fulfillment",
			Version:             "1.2.0",
			Context:             json.RawMessage(`{"order_id":42,"items":[{"sku":"A-1","qty":2}],"rush":true}`),
			CorrelationID:       "0193a0b2-0000-7000-8000-0000000000c1",
			ParentCorrelationID: "0193a0b2-0000-7000-8000-0000000000c0",
			Priority:            5,
			Tags:                []string{"eu", "web"},
		},
		Step: contracts.StepInfo{
			StepUUID:         "0193a0b2-0000-7000-8000-000000000002",
			Name:             "charge_card",
			TemplateStepName: "charge_card",
			Attempts:         2,
			MaxAttempts:      3,
			Retryable:        true,
			Inputs:           json.RawMessage(`{"batch_id":"001","start_cursor":0,"end_cursor":100,"batch_size":100}`),
			Checkpoint:       json.RawMessage(`{"cursor":40,"items_processed":40,"accumulated_results":{"sum":12.5}}`),
		},
		StepDefinition: contracts.StepDefinition{
			Handler: contracts.HandlerDefinition{
				Callable:       "payments.charge_card",
				Method:         "call",
				Initialization: map[string]any{"gateway": "stripe", "timeout_ms": 2500.0},
			},
			Dependencies:   []string{"validate_order"},
			TimeoutSeconds: 30,
		},
		DependencyResults: map[string]contracts.StepResult{"validate_order": fullResult()},
	}
}

// fullResult has every field of a result set to a non-zero value.
func fullResult() contracts.StepResult {
	backoff := 1.5
	return contracts.StepResult{
		StepUUID: "0193a0b2-0000-7000-8000-000000000003",
		Success:  false,
		Status:   contracts.StatusFailed,
		Result:   json.RawMessage(`{"partial":[1,2,3]}`),
		Metadata: json.RawMessage(`{"execution_time_ms":12,"worker_hostname":"h1"}`),
		Error: &contracts.StepError{
			Message:    "gateway rate limited",
			ErrorType:  contracts.ErrorTypeHandler,
			Retryable:  true,
			StatusCode: 429,
		},
		OrchestrationMetadata: &contracts.OrchestrationMetadata{
			BackoffHint:           &contracts.BackoffHint{DelaySeconds: 2.5, BackoffType: "server_requested"},
			BackoffRequestSeconds: &backoff,
		},
		Checkpoint: json.RawMessage(`{"cursor":"page-7","items_processed":700,"accumulated_results":null}`),
	}
}

// sameJSON reports whether a and b encode to the same JSON value.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// roundTrip checks that the protobuf message mirrors the hand-written Go type
// field by field, in both directions:
//   - the Go type's JSON decodes strictly (no unknown field) into the message
//     and comes back unchanged through protojson: Go ⊆ proto, same types;
//   - the message's JSON with every field emitted decodes strictly into the
//     Go type: proto ⊆ Go.
func roundTrip[G any](t *testing.T, goValue G, msg proto.Message) {
	t.Helper()
	raw, err := json.Marshal(goValue)
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(raw, msg); err != nil {
		t.Fatalf("the JSON of %T does not decode as %T (a field is missing or typed differently in the .proto): %v",
			goValue, msg, err)
	}
	back, err := protojson.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	var again G
	if err := json.Unmarshal(back, &again); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, goValue, again) {
		t.Fatalf("%T does not survive a trip through %T:\n go:    %s\n proto: %s", goValue, msg, raw, back)
	}

	all, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(all)))
	dec.DisallowUnknownFields()
	var strict G
	if err := dec.Decode(&strict); err != nil {
		t.Fatalf("%T has a field %T lacks: %v\n%s", msg, goValue, err, all)
	}
}

func TestProtoMirrorsJSONEnvelope(t *testing.T) {
	t.Parallel()
	roundTrip(t, fullEnvelope(), &handlerv1.ExecuteRequest{})
}

func TestProtoMirrorsJSONResult(t *testing.T) {
	t.Parallel()
	roundTrip(t, fullResult(), &handlerv1.ExecuteResponse{})
	// A success whose result is not an object (google.protobuf.Value).
	roundTrip(t, contracts.StepResult{Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`[1,"two",null]`)},
		&handlerv1.ExecuteResponse{})
}

// The batch messages have the JSON shape of the batch contract.
func TestProtoBatchShapes(t *testing.T) {
	t.Parallel()
	type batchRequest struct {
		Steps []contracts.StepEnvelope `json:"steps"`
	}
	type batchResponse struct {
		Results []contracts.StepResult `json:"results"`
	}
	roundTrip(t, batchRequest{Steps: []contracts.StepEnvelope{fullEnvelope(), fullEnvelope()}}, &handlerv1.ExecuteBatchRequest{})
	roundTrip(t, batchResponse{Results: []contracts.StepResult{fullResult(), {StepUUID: "x", Success: true}}}, &handlerv1.ExecuteBatchResponse{})
}

// doubler is the Go handler of contracts/README.md.
type doubler struct {
	handlerv1connect.UnimplementedHandlerServiceHandler
}

func (doubler) Execute(_ context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	n := req.Msg.GetTask().GetContext().GetFields()["n"].GetNumberValue()
	return connect.NewResponse(&handlerv1.ExecuteResponse{
		StepUuid: req.Msg.GetStep().GetStepUuid(),
		Success:  true,
		Status:   "completed",
		Result:   structpb.NewNumberValue(n * 2),
	}), nil
}

// The generated Connect code serves the contract over the Connect protocol
// (binary and JSON), over gRPC, and to a plain JSON POST of the envelope.
func TestGeneratedServiceServesAllProtocols(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle(handlerv1connect.NewHandlerServiceHandler(doubler{}))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	hc := srv.Client()
	defer hc.CloseIdleConnections()

	env := fullEnvelope()
	env.Task.Context = json.RawMessage(`{"n":21}`)
	raw, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	req := &handlerv1.ExecuteRequest{}
	if err := protojson.Unmarshal(raw, req); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for name, opts := range map[string][]connect.ClientOption{
		"connect":      nil,
		"connect+json": {connect.WithProtoJSON()},
		"grpc":         {connect.WithGRPC()},
	} {
		client := handlerv1connect.NewHandlerServiceClient(hc, srv.URL, opts...)
		res, err := client.Execute(ctx, connect.NewRequest(req))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !res.Msg.GetSuccess() || res.Msg.GetResult().GetNumberValue() != 42 || res.Msg.GetStepUuid() != env.Step.StepUUID {
			t.Errorf("%s: got %v", name, res.Msg)
		}
		_, err = client.ExecuteBatch(ctx, connect.NewRequest(&handlerv1.ExecuteBatchRequest{}))
		if connect.CodeOf(err) != connect.CodeUnimplemented {
			t.Errorf("%s: ExecuteBatch of the unimplemented handler: %v", name, err)
		}
	}

	// The JSON contract's envelope, posted as is, is a valid Connect unary
	// JSON request, and the answer is a JSON StepExecutionResult.
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/tasker.handler.v1.HandlerService/Execute", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	post.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(post)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var got contracts.StepResult
	if err := dec.Decode(&got); resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("plain JSON POST: %d %s (%v)", resp.StatusCode, body, err)
	}
	if !got.Success || got.Status != contracts.StatusCompleted || string(got.Result) != "42" || got.StepUUID != env.Step.StepUUID {
		t.Fatalf("plain JSON POST answered %s", body)
	}
}
