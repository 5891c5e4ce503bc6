package callout

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Step results a handler may answer, valid and tricky, for the seed corpora.
var resultSeeds = []string{
	`{"success":true,"result":{"charge_id":"ch_1","amount":138}}`,
	`{"success":true}`,
	`{"success":true,"status":"completed","result":null,"metadata":{"ms":3}}`,
	`{"success":false,"error":{"message":"card declined","error_type":"payment_error","retryable":false,"status_code":402}}`,
	`{"success":false,"error":{"message":"busy"},"orchestration_metadata":{"backoff_request_seconds":2.5}}`,
	`{"success":false,"orchestration_metadata":{"backoff_hint":{"delay_seconds":1,"backoff_type":"fixed"}}}`,
	`{"success":false}`,
	`{"success":true,"status":"failed"}`,
	`{"success":true,"status":"yielded","checkpoint":{"cursor":1000,"done":1000}}`,
	`{"success":false,"status":"yielded"}`,
	`{"success":true,"status":"weird"}`,
	`{"success":true,"error":{"message":""}}`,
	`{"success":true,"result":{"decision_point_outcome":{"type":"create_steps","step_names":["a","b"]}}}`,
	`{"success":"yes"}`,
	`{"success":null}`,
	`{"success":true,"error":"boom"}`,
	`{"success":true,"result":{"s":"\u0000\ud800 <&>"}}`,
	`{"success":true,"step_uuid":"\xff\xfe","error":{"message":"\xff"}}`,
	`{"success":false,"error":{"status_code":99999999999999999999}}`,
	`{"success":false,"orchestration_metadata":{"backoff_request_seconds":1e400}}`,
	`{"success":false,"orchestration_metadata":{"backoff_request_seconds":-1}}`,
	`{"success":true,"success":false}`,
	`{"Success":true,"STATUS":"yielded"}`,
	`[{"success":true}]`,
	`null`,
	`true`,
	`"success"`,
	``,
	`   `,
	`{"success":true}{"success":false}`,
	`{"success":true`,
	`<html><body>502 Bad Gateway</body></html>`,
	strings.Repeat(`{"a":`, 2000) + `1` + strings.Repeat(`}`, 2000),
}

// FuzzHandlerResult feeds a handler's HTTP answer (status, Retry-After,
// body) to DecodeStepResult and ClassifyResponse. Properties:
//
//   - neither panics;
//   - DecodeStepResult gives either a coherent result (see checkResult)
//     or an error with a message, never both;
//   - a decoded result survives a round trip: its JSON decodes to itself;
//   - ClassifyResponse always gives a coherent result: a 2xx answer is the
//     decoded result (or success for an empty body, or a permanent
//     invalid_handler_response), any other answer a failure carrying the
//     status code, retryable exactly for 408, 429 and 5xx unless the body
//     says otherwise, with a Retry-After delay of at most MaxRetryAfter.
func FuzzHandlerResult(f *testing.F) {
	for i, s := range resultSeeds {
		codes := []int{200, 201, 204, 400, 404, 408, 422, 429, 500, 502, 503, 301, 0, 99, 600, -1}
		f.Add(codes[i%len(codes)], []string{"", "1", "120", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "NaN", "1e400"}[i%7], false, []byte(s))
		f.Add(200, "", i%5 == 0, []byte(s))
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, retryAfter string, tooLarge bool, body []byte) {
		defer watchdog(10 * time.Second)()
		decoded, decErr := DecodeStepResult(body)
		if decErr != nil {
			if !reflect.DeepEqual(decoded, contracts.StepResult{}) {
				t.Fatalf("DecodeStepResult returned a result and an error (%v): %+v", decErr, decoded)
			}
			if strings.TrimSpace(decErr.Error()) == "" {
				t.Fatal("DecodeStepResult failed with an empty message")
			}
		} else {
			checkResult(t, "DecodeStepResult", decoded)
			checkRoundTrip(t, decoded)
		}

		r := HTTPResponse{
			Endpoint: "http://handler.test/x", StatusCode: status, Header: http.Header{},
			Body: body, TooLarge: tooLarge, Limit: 1 << 20,
		}
		if retryAfter != "" {
			r.Header.Set("Retry-After", retryAfter)
		}
		res := ClassifyResponse(r, now)
		checkResult(t, "ClassifyResponse", res)
		if !reflect.DeepEqual(res, ClassifyResponse(r, now)) {
			t.Fatal("ClassifyResponse is not pure: two calls differ")
		}
		if status >= 200 && status <= 299 {
			switch {
			case tooLarge, decErr != nil && len(bytes.TrimSpace(body)) > 0:
				if res.Success || res.Error.ErrorType != contracts.ErrorTypeInvalidResponse || res.Error.Retryable {
					t.Fatalf("a %d answer with a bad body is not a permanent invalid_handler_response: %+v %+v", status, res, res.Error)
				}
			case len(bytes.TrimSpace(body)) == 0:
				if !res.Success || res.Error != nil {
					t.Fatalf("a %d answer with an empty body is not a success: %+v", status, res)
				}
			default:
				if !reflect.DeepEqual(res, decoded) {
					t.Fatalf("a %d answer is not its decoded body:\n%+v\n%+v", status, res, decoded)
				}
			}
			return
		}
		if res.Success || res.Error == nil || res.Error.StatusCode != status {
			t.Fatalf("a %d answer is not a failure with its status code: %+v %+v", status, res, res.Error)
		}
		if res.Error.Retryable && !statusRetryable(status) {
			t.Fatalf("a %d answer is retryable", status)
		}
		bodyAsksBackoff := decErr == nil && decoded.OrchestrationMetadata != nil && decoded.OrchestrationMetadata.BackoffRequestSeconds != nil
		if m := res.OrchestrationMetadata; m != nil && m.BackoffRequestSeconds != nil && !bodyAsksBackoff {
			if s := *m.BackoffRequestSeconds; !(s >= 0 && s <= MaxRetryAfter.Seconds()) {
				t.Fatalf("Retry-After %q gave a backoff of %v seconds", retryAfter, s)
			}
		}
	})
}

// Batch responses for the seed corpus: the uuids are the envelopes' of
// FuzzHandlerBatchResult.
var batchSeeds = []string{
	`{"results":[{"step_uuid":"s1","success":true,"result":{"n":1}},{"step_uuid":"s2","success":false,"error":{"message":"no"}}]}`,
	`{"results":[{"step_uuid":"s2","success":true},{"step_uuid":"s1","success":true,"status":"yielded","checkpoint":{"c":1}}]}`,
	`{"results":[]}`,
	`{"results":null}`,
	`{"results":{}}`,
	`{"results":[{"step_uuid":"s1","success":"x"},{"step_uuid":"s2","success":true}]}`,
	`{"results":[{"step_uuid":"s1","success":true},{"step_uuid":"s1","success":true}]}`,
	`{"results":[{"step_uuid":"s9","success":true},{"success":true},null,1,"x",[]]}`,
	`{"results":[{"step_uuid":5,"success":true},{"step_uuid":"s2"}]}`,
	`{"Results":[{"step_uuid":"s1","success":true}],"results":[{"step_uuid":"s2","success":true}]}`,
	`{"results":[{"step_uuid":"s1","success":true,"error":{"retryable":"no"}}]}`,
	`{"results":[{"step_uuid":"s1","success":true}]`,
	`{"steps":[]}`,
	`[]`,
	`{"results":[{"step_uuid":"\u0000","success":true},{"step_uuid":"\xff","success":false}]}`,
}

// FuzzHandlerBatchResult feeds batch response bodies to the batch decoder
// (decodeBatchResponse: one pass, and item by item when any item is bad)
// and matches them to a call's steps (matchBatch). Properties:
//
//   - nothing panics;
//   - the decoder gives items or an error, never both; each item is a
//     coherent result or an error, never both;
//   - each item is what DecodeStepResult makes of it alone, whichever
//     path decoded it;
//   - matching gives every step of the call a coherent result for that
//     step: its item when it has exactly one valid one, else a failure.
func FuzzHandlerBatchResult(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	for _, s := range resultSeeds[:8] {
		f.Add([]byte(`{"results":[` + s + `]}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		defer watchdog(10 * time.Second)()
		items, err := decodeBatchResponse(body)
		if err != nil {
			if items != nil {
				t.Fatalf("decodeBatchResponse returned items and an error: %v", err)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("decodeBatchResponse failed with an empty message")
			}
			return
		}
		var raw struct {
			Results []json.RawMessage `json:"results"`
		}
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("decodeBatchResponse accepted a body that has no results array: %v", err)
		}
		if len(raw.Results) != len(items) {
			t.Fatalf("%d items decoded from %d results", len(items), len(raw.Results))
		}
		for i, it := range items {
			alone, aloneErr := DecodeStepResult(raw.Results[i])
			if it.err != nil {
				if aloneErr == nil {
					t.Fatalf("item %d: refused in the batch (%v) but valid alone", i, it.err)
				}
				if !reflect.DeepEqual(it.res, contracts.StepResult{}) {
					t.Fatalf("item %d: a result and an error (%v)", i, it.err)
				}
				continue
			}
			if aloneErr != nil {
				t.Fatalf("item %d: valid in the batch but refused alone: %v", i, aloneErr)
			}
			checkResult(t, "batch item", it.res)
			if !reflect.DeepEqual(it.res, alone) {
				t.Fatalf("item %d: decoded in the batch as %+v, alone as %+v", i, it.res, alone)
			}
			if it.stepUUID != it.res.StepUUID {
				t.Fatalf("item %d: step_uuid %q, result's %q", i, it.stepUUID, it.res.StepUUID)
			}
		}

		// The call's steps: s1, s2, and the first uuid answered (if new).
		ids := []string{"s1", "s2"}
		if len(items) > 0 && items[0].stepUUID != "" && items[0].stepUUID != "s1" && items[0].stepUUID != "s2" {
			ids = append(ids, items[0].stepUUID)
		}
		all := make([]*contracts.StepEnvelope, len(ids))
		idx := make([]int, len(ids))
		for i, id := range ids {
			all[i] = &contracts.StepEnvelope{Step: contracts.StepInfo{StepUUID: id}}
			idx[i] = i
		}
		out := make([]contracts.StepResult, len(ids))
		matchBatch("http://handler.test/batch", all, idx, items, out)
		for i, id := range ids {
			if out[i].StepUUID != id {
				t.Fatalf("step %q got the result of step %q", id, out[i].StepUUID)
			}
			checkResult(t, "matched result", out[i])
			var mine []batchItem
			for _, it := range items {
				if it.stepUUID == id {
					mine = append(mine, it)
				}
			}
			if len(mine) == 1 && mine[0].err == nil {
				want := mine[0].res
				want.StepUUID = id
				if !reflect.DeepEqual(out[i], want) {
					t.Fatalf("step %q: matched %+v, want its item %+v", id, out[i], want)
				}
			} else if out[i].Success || out[i].Error.ErrorType != contracts.ErrorTypeInvalidResponse {
				t.Fatalf("step %q with %d items is not an invalid_handler_response: %+v", id, len(mine), out[i])
			}
		}
	})
}

// checkResult fails unless res is coherent: a known status; completed only
// with success; failed only without success and with an error that has a
// message and a type; messages in valid UTF-8 (they are stored as JSON).
func checkResult(t *testing.T, what string, res contracts.StepResult) {
	t.Helper()
	switch res.Status {
	case contracts.StatusCompleted:
		if !res.Success {
			t.Fatalf("%s: completed without success: %+v", what, res)
		}
	case contracts.StatusFailed:
		if res.Success || res.Error == nil {
			t.Fatalf("%s: failed with success or without an error: %+v", what, res)
		}
	case contracts.StatusYielded:
	default:
		t.Fatalf("%s: unknown status %q: %+v", what, res.Status, res)
	}
	if e := res.Error; e != nil {
		if e.ErrorType == "" {
			t.Fatalf("%s: an error without a type: %+v", what, e)
		}
		if !res.Success && strings.TrimSpace(e.Message) == "" {
			t.Fatalf("%s: a failure without a message: %+v", what, e)
		}
		if !utf8.ValidString(e.Message) || !utf8.ValidString(e.ErrorType) {
			t.Fatalf("%s: an error message in invalid UTF-8: %q %q", what, e.Message, e.ErrorType)
		}
	}
	for _, raw := range []json.RawMessage{res.Result, res.Metadata, res.Checkpoint} {
		if len(raw) > 0 && !json.Valid(raw) {
			t.Fatalf("%s: a field holds invalid JSON: %s", what, raw)
		}
	}
}

// checkRoundTrip fails unless the JSON of res decodes to res again.
func checkRoundTrip(t *testing.T, res contracts.StepResult) {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(res); err != nil {
		t.Fatalf("encoding a decoded result: %v", err)
	}
	again, err := DecodeStepResult(buf.Bytes())
	if err != nil {
		t.Fatalf("the JSON of a decoded result is refused: %v\n%s", err, buf.Bytes())
	}
	want := res
	for _, p := range []*json.RawMessage{&want.Result, &want.Metadata, &want.Checkpoint} {
		if len(*p) > 0 {
			var c bytes.Buffer
			if err := json.Compact(&c, *p); err != nil {
				t.Fatal(err)
			}
			*p = c.Bytes()
		}
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("a result changed in a JSON round trip:\n%+v\n%+v\n%s", want, again, buf.Bytes())
	}
}

// watchdog crashes the process when an input takes longer than d, so that
// the fuzzer records it as a failing input (it reports no hangs itself).
// Call the function it returns when the input is done.
func watchdog(d time.Duration) func() {
	timer := time.AfterFunc(d, func() {
		debug.SetTraceback("all")
		panic("fuzz: one input took longer than " + d.String())
	})
	return func() { timer.Stop() }
}
