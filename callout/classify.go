package callout

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// MaxRetryAfter caps the delay a handler can ask for with Retry-After.
const MaxRetryAfter = time.Hour

// excerptBytes is how much of a bad body a failure keeps.
const excerptBytes = 200

// MetadataResponseExcerpt is the key, in the metadata of a failure the
// runner made from a reply that is not a step result, of the reply's first
// bytes (up to 200, as text; "response_bytes" has the body's length). It is
// kept apart from the message because the reply may come from a service
// the caller should not read (a handler URL pointing somewhere internal):
// the management API shows it to admin-scoped callers only.
const MetadataResponseExcerpt = "response_excerpt"

// HTTPResponse is a handler's HTTP answer as [ClassifyResponse] sees it.
type HTTPResponse struct {
	// Endpoint names the called URL in messages. It must carry no secrets:
	// [HTTPInvoker] passes the URL with password and query values redacted.
	Endpoint   string
	StatusCode int
	Header     http.Header
	// Body is the start of the response body: at most Limit bytes.
	Body []byte
	// TooLarge reports that the body was longer than Limit bytes.
	TooLarge bool
	Limit    int64
}

// ClassifyResponse turns a handler's HTTP answer into a step result
// (the handler contract, contracts/README.md). It is pure: same input, same result.
//
//   - 2xx with a step result body: that result (see [DecodeStepResult]).
//   - 2xx with an empty body: success with a null result.
//   - 2xx with any other body, or a body over the limit: permanent
//     invalid_handler_response quoting the start of the body.
//   - 408, 429, 5xx: retryable handler_error with status_code; Retry-After
//     (seconds or HTTP-date, capped at [MaxRetryAfter]) becomes
//     orchestration_metadata.backoff_request_seconds.
//   - other 4xx, 3xx (redirects are not followed) and anything else:
//     permanent handler_error with status_code.
//
// When a non-2xx body is itself a failed step result, its message, error
// type, metadata and backoff request are kept, but retryability stays the
// status's unless the body says "retryable": false. A backoff requested in
// the body wins over Retry-After.
func ClassifyResponse(r HTTPResponse, now time.Time) contracts.StepResult {
	code := r.StatusCode
	if code >= 200 && code <= 299 {
		if r.TooLarge {
			return contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("response from %s larger than %d bytes", r.Endpoint, r.Limit), false)
		}
		if len(bytes.TrimSpace(r.Body)) == 0 {
			return contracts.StepResult{Success: true, Status: contracts.StatusCompleted}
		}
		res, err := DecodeStepResult(r.Body)
		if err != nil {
			return withExcerpt(contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("handler at %s answered %s with a body that is not a step result (%v)",
					r.Endpoint, statusText(code), err), false), r.Body)
		}
		return res
	}

	retryable := statusRetryable(code)
	msg := fmt.Sprintf("handler at %s answered %s", r.Endpoint, statusText(code))
	if code >= 300 && code <= 399 {
		msg += " (redirects are not followed: register the final URL)"
	}
	res := contracts.Failure(contracts.ErrorTypeHandler, msg, retryable)
	res.Error.StatusCode = code

	var body *contracts.StepResult
	if !r.TooLarge && len(bytes.TrimSpace(r.Body)) > 0 {
		if b, retryableSet, err := decodeStepResult(r.Body); err == nil && b.Error != nil {
			body = &b
			if retryableSet && !b.Error.Retryable {
				res.Error.Retryable = false
			}
		}
	}
	switch {
	case body != nil:
		res.Error.Message = body.Error.Message + " (" + msg + ")"
		if body.Error.ErrorType != "" {
			res.Error.ErrorType = body.Error.ErrorType
		}
		res.Result, res.Metadata = body.Result, body.Metadata
		res.OrchestrationMetadata = body.OrchestrationMetadata
	case len(bytes.TrimSpace(r.Body)) > 0:
		res = withExcerpt(res, r.Body)
	}
	if res.Error.Retryable {
		if d, ok := ParseRetryAfter(r.Header.Get("Retry-After"), now); ok {
			m := res.OrchestrationMetadata
			if m == nil {
				m = &contracts.OrchestrationMetadata{}
			} else {
				c := *m
				m = &c
			}
			if m.BackoffRequestSeconds == nil {
				s := d.Seconds()
				m.BackoffRequestSeconds = &s
			}
			res.OrchestrationMetadata = m
		}
	}
	return res
}

// statusRetryable: 408, 429 and 5xx may succeed later; everything else
// (other 4xx, 3xx, nonsense codes) will not.
func statusRetryable(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || (code >= 500 && code <= 599)
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP-date (relative to now; a date in the past means no delay). The delay
// is capped at [MaxRetryAfter]. ok is false for an empty or unparsable value.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(s) || s < 0 {
			return 0, false
		}
		if s >= MaxRetryAfter.Seconds() {
			return MaxRetryAfter, true
		}
		// Whole seconds are the standard form; fractions are tolerated.
		return time.Duration(s * float64(time.Second)), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter), true
}

// wireResult is a StepResult as decoded from a handler, keeping what was
// absent apart from what was false.
type wireResult struct {
	StepUUID              string                           `json:"step_uuid"`
	Success               *bool                            `json:"success"`
	Status                string                           `json:"status"`
	Result                json.RawMessage                  `json:"result"`
	Metadata              json.RawMessage                  `json:"metadata"`
	Error                 *wireError                       `json:"error"`
	OrchestrationMetadata *contracts.OrchestrationMetadata `json:"orchestration_metadata"`
	Checkpoint            json.RawMessage                  `json:"checkpoint"`
}

type wireError struct {
	Message    string `json:"message"`
	ErrorType  string `json:"error_type"`
	Retryable  *bool  `json:"retryable"`
	StatusCode int    `json:"status_code"`
}

// DecodeStepResult reads a handler's step result (a StepExecutionResult) and
// normalises it. Rules:
//
//   - the body must be one JSON object with "success" present as a boolean;
//     unknown fields are ignored; a field of the wrong type is an error;
//   - "status" "failed" makes it a failure whatever "success" says; an empty
//     or unknown status becomes "completed" or "failed" from "success";
//     "yielded" is kept;
//   - a failure without "error" gets a retryable handler_error; in "error", an
//     absent "retryable" means true (retries stay bounded by the step's
//     max_attempts and the template's retryable flag: an omitted flag must
//     not dead-letter a transient failure), an empty "error_type" means
//     handler_error and an empty "message" gets a placeholder;
//   - JSON null "result", "metadata" and "checkpoint" become absent.
func DecodeStepResult(body []byte) (contracts.StepResult, error) {
	res, _, err := decodeStepResult(body)
	return res, err
}

func decodeStepResult(body []byte) (res contracts.StepResult, retryableSet bool, err error) {
	var w wireResult
	if err := json.Unmarshal(body, &w); err != nil {
		return res, false, describeJSONError(err)
	}
	return w.normalize()
}

func (w *wireResult) normalize() (res contracts.StepResult, retryableSet bool, err error) {
	if w.Success == nil {
		return res, false, errors.New(`"success" (a boolean) is missing`)
	}
	res = contracts.StepResult{
		StepUUID:              w.StepUUID,
		Success:               *w.Success,
		Status:                w.Status,
		Result:                nonNull(w.Result),
		Metadata:              nonNull(w.Metadata),
		OrchestrationMetadata: w.OrchestrationMetadata,
		Checkpoint:            nonNull(w.Checkpoint),
	}
	switch res.Status {
	case contracts.StatusYielded:
	case contracts.StatusFailed:
		res.Success = false
	default:
		if res.Success {
			res.Status = contracts.StatusCompleted
		} else {
			res.Status = contracts.StatusFailed
		}
	}
	if w.Error != nil {
		e := &contracts.StepError{
			Message:    w.Error.Message,
			ErrorType:  w.Error.ErrorType,
			Retryable:  true,
			StatusCode: w.Error.StatusCode,
		}
		if w.Error.Retryable != nil {
			retryableSet = true
			e.Retryable = *w.Error.Retryable
		}
		if e.ErrorType == "" {
			e.ErrorType = contracts.ErrorTypeHandler
		}
		if strings.TrimSpace(e.Message) == "" && !res.Success {
			e.Message = "handler reported failure without a message"
		}
		res.Error = e
	} else if !res.Success && res.Status == contracts.StatusFailed {
		res.Error = &contracts.StepError{
			Message:   "handler reported failure without an error",
			ErrorType: contracts.ErrorTypeHandler,
			Retryable: true,
		}
	}
	return res, retryableSet, nil
}

func nonNull(m json.RawMessage) json.RawMessage {
	if len(m) == 0 || string(m) == "null" {
		return nil
	}
	return m
}

// describeJSONError words a decoding error without Go type names.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("expected a JSON object, got JSON %s", te.Value)
		}
		return fmt.Errorf("%q has the wrong type (JSON %s)", te.Field, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	return errors.New("invalid JSON: " + strings.TrimPrefix(err.Error(), "json: "))
}

// withExcerpt keeps the start of a reply body in res's metadata (see
// [MetadataResponseExcerpt]).
func withExcerpt(res contracts.StepResult, body []byte) contracts.StepResult {
	m, err := json.Marshal(map[string]any{MetadataResponseExcerpt: excerpt(body), "response_bytes": len(bytes.TrimSpace(body))})
	if err == nil {
		res.Metadata = m
	}
	return res
}

// excerpt is the start of a body as valid UTF-8 text.
func excerpt(b []byte) string {
	b = bytes.TrimSpace(b)
	n := len(b)
	if n <= excerptBytes {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	cut := b[:excerptBytes]
	// Drop a rune split by the cut rather than show a replacement char.
	for i := 0; i < utf8.UTFMax-1 && len(cut) > 0; i++ {
		if r, size := utf8.DecodeLastRune(cut); r != utf8.RuneError || size > 1 {
			break
		}
		cut = cut[:len(cut)-1]
	}
	return strings.ToValidUTF8(string(cut), "\uFFFD") + "..."
}

// callTimeoutError is the cause set when [HTTPConfig.Timeout] ends a call.
type callTimeoutError struct{ d time.Duration }

func (e *callTimeoutError) Error() string   { return "call timeout of " + e.d.String() + " exceeded" }
func (e *callTimeoutError) Timeout() bool   { return true }
func (e *callTimeoutError) Is(t error) bool { return t == context.DeadlineExceeded }

// ClassifyCallError turns a failed call (no usable response) into a step
// result. endpoint names the URL in the message and must carry no secrets.
//
//   - an address the [URLPolicy] refused: permanent handler_url_refused
//     naming the rule (the same address would be refused on every attempt);
//   - the step deadline or the per-call timeout: retryable handler_timeout;
//   - connection refused or reset, DNS failure, TLS failure, a connection
//     closed before the response, any other transport error: retryable
//     handler_error naming the endpoint;
//   - a cancelled context (runner shutting down, caller gone): retryable
//     handler_error "call abandoned".
func ClassifyCallError(endpoint string, err error) contracts.StepResult {
	retry := func(format string, args ...any) contracts.StepResult {
		return contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf(format, args...), true)
	}
	var refused *URLRefusedError
	if errors.As(err, &refused) {
		return urlRefused(endpoint, refused)
	}
	var ct *callTimeoutError
	if errors.As(err, &ct) {
		return contracts.Failure(contracts.ErrorTypeTimeout,
			fmt.Sprintf("no response from %s within the call timeout of %s", endpoint, ct.d), true)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return contracts.Failure(contracts.ErrorTypeTimeout,
			fmt.Sprintf("no response from %s before the step deadline", endpoint), true)
	}
	if errors.Is(err, context.Canceled) {
		return retry("call to %s abandoned: %v", endpoint, context.Canceled)
	}
	// url.Error repeats the full URL (query included): report what is inside.
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		err = ue.Err
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	var opErr *net.OpError
	var timeoutErr interface{ Timeout() bool }
	switch {
	case errors.As(err, &dnsErr):
		return retry("cannot resolve the host of %s: %s", endpoint, dnsErr.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return retry("cannot connect to %s: connection refused", endpoint)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return retry("connection to %s was reset before a complete response", endpoint)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return retry("%s closed the connection before a complete response", endpoint)
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recErr):
		return retry("TLS with %s failed: %v", endpoint, err)
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return retry("cannot connect to %s: %v", endpoint, opErr.Err)
	case errors.As(err, &timeoutErr) && timeoutErr.Timeout():
		return contracts.Failure(contracts.ErrorTypeTimeout,
			fmt.Sprintf("no response from %s in time: %v", endpoint, err), true)
	}
	return retry("call to %s failed: %v", endpoint, err)
}
