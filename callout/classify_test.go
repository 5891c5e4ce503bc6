package callout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// classifyNow is the fixed clock of the pure classification tests.
var classifyNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// wantFailure checks a failed result's type, retryability, status code and
// that its message contains every fragment.
func wantFailure(t *testing.T, name string, res contracts.StepResult, errType string, retryable bool, status int, fragments ...string) {
	t.Helper()
	if res.Success || res.Status != contracts.StatusFailed || res.Error == nil {
		t.Errorf("%s: want a failure, got %+v", name, res)
		return
	}
	e := res.Error
	if e.ErrorType != errType || e.Retryable != retryable || e.StatusCode != status {
		t.Errorf("%s: got type %s retryable %v status %d, want %s %v %d (message %q)",
			name, e.ErrorType, e.Retryable, e.StatusCode, errType, retryable, status, e.Message)
	}
	text := failureText(res)
	for _, f := range fragments {
		if !strings.Contains(text, f) {
			t.Errorf("%s: message %q does not contain %q", name, text, f)
		}
	}
}

// failureText is a failure's message followed by the quoted reply excerpt
// kept in its metadata, if any.
func failureText(res contracts.StepResult) string {
	text := res.Error.Message
	var m map[string]any
	if json.Unmarshal(res.Metadata, &m) == nil {
		if ex, ok := m[callout.MetadataResponseExcerpt].(string); ok {
			text += fmt.Sprintf(" excerpt %q (%v bytes)", ex, m["response_bytes"])
		}
	}
	return text
}

func backoffOf(res contracts.StepResult) (float64, bool) {
	if res.OrchestrationMetadata == nil || res.OrchestrationMetadata.BackoffRequestSeconds == nil {
		return 0, false
	}
	return *res.OrchestrationMetadata.BackoffRequestSeconds, true
}

func TestClassifyResponseTable(t *testing.T) {
	t.Parallel()
	const ep = "http://handler.test/run"
	long := strings.Repeat("x", 191) + strings.Repeat("é", 20) // a 2-byte rune straddles byte 200
	for _, tc := range []struct {
		name      string
		status    int
		header    http.Header
		body      string
		tooLarge  bool
		success   bool
		result    string
		errType   string
		retryable bool
		backoff   float64 // -1: none
		fragments []string
	}{
		{name: "200 result", status: 200, body: `{"success":true,"result":{"n":1},"extra":"ignored"}`, success: true, result: `{"n":1}`},
		{name: "201 result", status: 201, body: `{"success":true}`, success: true},
		{name: "200 empty", status: 200, body: "", success: true},
		{name: "204 whitespace", status: 204, body: " \n", success: true},
		{name: "200 failure", status: 200, body: `{"success":false,"error":{"message":"declined","error_type":"card","retryable":false}}`,
			errType: "card", backoff: -1, fragments: []string{"declined"}},
		{name: "200 not a result", status: 200, body: `{"ok":true}`, errType: contracts.ErrorTypeInvalidResponse, backoff: -1,
			fragments: []string{`"success" (a boolean) is missing`, `{\"ok\":true}`, ep, "200 OK"}},
		{name: "200 invalid JSON", status: 200, body: `{"success":tru`, errType: contracts.ErrorTypeInvalidResponse, backoff: -1,
			fragments: []string{"invalid JSON", `"{\"success\":tru"`}},
		{name: "200 long garbage", status: 200, body: long, errType: contracts.ErrorTypeInvalidResponse, backoff: -1,
			fragments: []string{`"` + strings.Repeat("x", 191) + strings.Repeat("é", 4) + `..." (231 bytes)`}},
		{name: "200 too large", status: 200, body: `{"success":true`, tooLarge: true, errType: contracts.ErrorTypeInvalidResponse, backoff: -1,
			fragments: []string{"larger than 15 bytes", ep}},
		{name: "302", status: 302, header: http.Header{"Location": {"/elsewhere"}}, errType: contracts.ErrorTypeHandler, backoff: -1,
			fragments: []string{"302 Found", "redirects are not followed"}},
		{name: "400", status: 400, body: "bad field", errType: contracts.ErrorTypeHandler, backoff: -1,
			fragments: []string{"400 Bad Request", `"bad field"`}},
		{name: "404", status: 404, errType: contracts.ErrorTypeHandler, backoff: -1, fragments: []string{"404 Not Found"}},
		{name: "408", status: 408, errType: contracts.ErrorTypeHandler, retryable: true, backoff: -1},
		{name: "422 with result body", status: 422, body: `{"success":false,"error":{"message":"amount must be positive","error_type":"validation"}}`,
			errType: "validation", backoff: -1, fragments: []string{"amount must be positive", "422 Unprocessable Entity"}},
		{name: "422 body says retryable", status: 422, body: `{"success":false,"error":{"message":"m","retryable":true}}`,
			errType: contracts.ErrorTypeHandler, backoff: -1},
		{name: "429", status: 429, errType: contracts.ErrorTypeHandler, retryable: true, backoff: -1},
		{name: "429 seconds", status: 429, header: http.Header{"Retry-After": {"7"}}, errType: contracts.ErrorTypeHandler, retryable: true, backoff: 7},
		{name: "429 date", status: 429, header: http.Header{"Retry-After": {classifyNow.Add(90 * time.Second).Format(http.TimeFormat)}},
			errType: contracts.ErrorTypeHandler, retryable: true, backoff: 90},
		{name: "429 capped", status: 429, header: http.Header{"Retry-After": {"86400"}}, errType: contracts.ErrorTypeHandler, retryable: true, backoff: 3600},
		{name: "429 body backoff wins", status: 429, header: http.Header{"Retry-After": {"7"}},
			body:    `{"success":false,"error":{"message":"slow down"},"orchestration_metadata":{"backoff_request_seconds":2}}`,
			errType: contracts.ErrorTypeHandler, retryable: true, backoff: 2, fragments: []string{"slow down"}},
		{name: "500", status: 500, body: "<html>oops</html>", errType: contracts.ErrorTypeHandler, retryable: true, backoff: -1,
			fragments: []string{"500 Internal Server Error", "oops"}},
		{name: "503 too large body", status: 503, body: "partial", tooLarge: true, errType: contracts.ErrorTypeHandler, retryable: true, backoff: -1},
		{name: "503 body says permanent", status: 503, header: http.Header{"Retry-After": {"5"}},
			body:    `{"success":false,"error":{"message":"account closed","retryable":false}}`,
			errType: contracts.ErrorTypeHandler, backoff: -1, fragments: []string{"account closed", "503"}},
		{name: "599", status: 599, errType: contracts.ErrorTypeHandler, retryable: true, backoff: -1, fragments: []string{"599"}},
		{name: "600", status: 600, errType: contracts.ErrorTypeHandler, backoff: -1},
	} {
		res := callout.ClassifyResponse(callout.HTTPResponse{
			Endpoint: ep, StatusCode: tc.status, Header: tc.header, Body: []byte(tc.body), TooLarge: tc.tooLarge, Limit: int64(len(tc.body)),
		}, classifyNow)
		if tc.success {
			if !res.Success || res.Status != contracts.StatusCompleted || res.Error != nil || string(res.Result) != tc.result {
				t.Errorf("%s: got %+v", tc.name, res)
			}
			continue
		}
		code := tc.status
		if code >= 200 && code <= 299 {
			code = 0
		}
		wantFailure(t, tc.name, res, tc.errType, tc.retryable, code, tc.fragments...)
		got, ok := backoffOf(res)
		if tc.backoff < 0 && ok {
			t.Errorf("%s: unexpected backoff %v", tc.name, got)
		}
		if tc.backoff >= 0 && (!ok || got != tc.backoff) {
			t.Errorf("%s: backoff %v (%v), want %v", tc.name, got, ok, tc.backoff)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{" 120 ", 2 * time.Minute, true},
		{"1.5", 1500 * time.Millisecond, true},
		{"-3", 0, false},
		{"NaN", 0, false},
		{"soon", 0, false},
		{"99999999", callout.MaxRetryAfter, true},
		{classifyNow.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second, true},
		{classifyNow.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{classifyNow.Add(48 * time.Hour).Format(http.TimeFormat), callout.MaxRetryAfter, true},
		{classifyNow.Add(10 * time.Second).Format(time.RFC850), 10 * time.Second, true},
	} {
		got, ok := callout.ParseRetryAfter(tc.in, classifyNow)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDecodeStepResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		errFrag    string // non-empty: decoding fails with this
		check      func(contracts.StepResult) bool
	}{
		{name: "minimal success", body: `{"success":true}`, check: func(r contracts.StepResult) bool {
			return r.Success && r.Status == contracts.StatusCompleted && r.Result == nil && r.Error == nil
		}},
		{name: "null result", body: `{"success":true,"result":null,"metadata":null}`, check: func(r contracts.StepResult) bool {
			return r.Result == nil && r.Metadata == nil
		}},
		{name: "retryable absent means true", body: `{"success":false,"error":{"message":"m"}}`, check: func(r contracts.StepResult) bool {
			return !r.Success && r.Status == contracts.StatusFailed && r.Error.Retryable && r.Error.ErrorType == contracts.ErrorTypeHandler
		}},
		{name: "retryable false kept", body: `{"success":false,"error":{"message":"m","retryable":false,"status_code":402}}`, check: func(r contracts.StepResult) bool {
			return !r.Error.Retryable && r.Error.StatusCode == 402
		}},
		{name: "failure without error", body: `{"success":false}`, check: func(r contracts.StepResult) bool {
			return r.Error != nil && r.Error.Retryable && strings.Contains(r.Error.Message, "without an error")
		}},
		{name: "status failed wins", body: `{"success":true,"status":"failed","error":{"message":"m"}}`, check: func(r contracts.StepResult) bool {
			return !r.Success && r.Status == contracts.StatusFailed
		}},
		{name: "unknown status", body: `{"success":true,"status":"done"}`, check: func(r contracts.StepResult) bool {
			return r.Success && r.Status == contracts.StatusCompleted
		}},
		{name: "yielded kept", body: `{"success":false,"status":"yielded","checkpoint":{"cursor":5}}`, check: func(r contracts.StepResult) bool {
			return r.Status == contracts.StatusYielded && string(r.Checkpoint) == `{"cursor":5}` && r.Error == nil
		}},
		{name: "backoff hint", body: `{"success":false,"error":{"message":"m"},"orchestration_metadata":{"backoff_hint":{"delay_seconds":3}}}`,
			check: func(r contracts.StepResult) bool { return r.OrchestrationMetadata.BackoffHint.DelaySeconds == 3 }},
		{name: "success missing", body: `{"status":"completed"}`, errFrag: `"success" (a boolean) is missing`},
		{name: "success null", body: `{"success":null}`, errFrag: `"success" (a boolean) is missing`},
		{name: "success string", body: `{"success":"yes"}`, errFrag: `"success" has the wrong type (JSON string)`},
		{name: "nested wrong type", body: `{"success":false,"error":{"retryable":"no"}}`, errFrag: `"error.retryable" has the wrong type`},
		{name: "array", body: `[{"success":true}]`, errFrag: "expected a JSON object, got JSON array"},
		{name: "null", body: `null`, errFrag: `"success" (a boolean) is missing`},
		{name: "trailing data", body: `{"success":true} {}`, errFrag: "invalid JSON"},
		{name: "truncated", body: `{"success":true,"result":[1,`, errFrag: "invalid JSON"},
	} {
		res, err := callout.DecodeStepResult([]byte(tc.body))
		if tc.errFrag != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errFrag) {
				t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.errFrag)
			}
			continue
		}
		if err != nil || !tc.check(res) {
			b, _ := json.Marshal(res)
			t.Errorf("%s: got %s, %v", tc.name, b, err)
		}
	}
}

func TestClassifyCallError(t *testing.T) {
	t.Parallel()
	const ep = "http://handler.test:8080/run"
	secretURL := &url.Error{Op: "Post", URL: "http://handler.test:8080/run?token=s3cret", Err: io.ErrUnexpectedEOF}
	for _, tc := range []struct {
		name      string
		err       error
		errType   string
		fragments []string
	}{
		{"deadline", fmt.Errorf("post: %w", context.DeadlineExceeded), contracts.ErrorTypeTimeout, []string{"before the step deadline", ep}},
		{"cancelled", &url.Error{Op: "Post", URL: ep, Err: context.Canceled}, contracts.ErrorTypeHandler, []string{"abandoned"}},
		{"dns", &url.Error{Op: "Post", URL: ep, Err: &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "handler.test", IsNotFound: true}}},
			contracts.ErrorTypeHandler, []string{"cannot resolve the host of " + ep, "no such host"}},
		{"refused", &url.Error{Op: "Post", URL: ep, Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}},
			contracts.ErrorTypeHandler, []string{"cannot connect to " + ep + ": connection refused"}},
		{"reset", &url.Error{Op: "Post", URL: ep, Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}},
			contracts.ErrorTypeHandler, []string{"was reset"}},
		{"eof", secretURL, contracts.ErrorTypeHandler, []string{"closed the connection"}},
		{"dial timeout", &url.Error{Op: "Post", URL: ep, Err: &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}},
			contracts.ErrorTypeHandler, []string{"cannot connect to " + ep}},
		{"header timeout", &url.Error{Op: "Post", URL: ep, Err: timeoutErr{}}, contracts.ErrorTypeTimeout, []string{"in time"}},
		{"other", errors.New("http2: stream closed"), contracts.ErrorTypeHandler, []string{"call to " + ep + " failed: http2: stream closed"}},
	} {
		res := callout.ClassifyCallError(ep, tc.err)
		wantFailure(t, tc.name, res, tc.errType, true, 0, tc.fragments...)
		if strings.Contains(res.Error.Message, "s3cret") {
			t.Errorf("%s: message leaks the query: %q", tc.name, res.Error.Message)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
