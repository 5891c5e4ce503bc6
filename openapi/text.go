package openapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Strings PostgreSQL cannot store are refused before they reach it: a NUL
// character (JSON "\u0000": jsonb refuses it with SQLSTATE 22P05, text with
// 22021), bytes that are not UTF-8 (22021; in a query or path parameter as
// %FF, or raw in a body) and unpaired UTF-16 surrogates ("\ud800": jsonb
// refuses the escape; encoding/json would quietly turn it into U+FFFD).
// Every parameter and every string of a JSON body, keys included and at
// any depth (contexts, results), is checked; the first bad one is answered
// with 422 at its location (query.namespace, body.context.order.note).

// unstorable returns the problem with the first string of the request that
// the database could not store, or nil: path, query and header parameters
// of the operation, then its JSON body. It is the REST half; the mirror
// calls [Server.checkParams] and [jsonTextProblem].
func unstorable(ctx huma.Context, op *huma.Operation) *huma.ErrorDetail {
	var query map[string][]string
	return paramText(op, func(p *huma.Param) []string {
		switch p.In {
		case "path":
			return []string{ctx.Param(p.Name)}
		case "query":
			if query == nil {
				u := ctx.URL()
				query = u.Query()
			}
			return query[p.Name]
		case "header":
			return []string{ctx.Header(p.Name)}
		}
		return nil
	})
}

// textMiddleware refuses requests carrying strings the database could not
// store (see [unstorable] and [jsonTextProblem]). It reads a JSON body of
// at most the operation's MaxBodyBytes ahead of huma and puts it back;
// a larger one is left to huma's own 413.
func (s *Server) textMiddleware(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	if d := unstorable(ctx, op); d != nil {
		_ = huma.WriteErr(s.api, ctx, http.StatusUnprocessableEntity, "validation failed", d)
		return
	}
	if op.RequestBody == nil {
		next(ctx)
		return
	}
	r, _ := humago.Unwrap(ctx)
	if r == nil || r.Body == nil || r.Body == http.NoBody || (op.MaxBodyBytes > 0 && r.ContentLength > op.MaxBodyBytes) {
		next(ctx)
		return
	}
	limit := op.MaxBodyBytes
	if limit <= 0 {
		limit = MaxRequestBytesDefault
	}
	body := r.Body
	buf, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil || int64(len(buf)) > limit {
		// huma reports the error or the size, reading what is left.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(buf), body), body}
		next(ctx)
		return
	}
	r.Body = readCloser{bytes.NewReader(buf), body}
	if d := jsonTextProblem(buf, "body"); d != nil {
		_ = huma.WriteErr(s.api, ctx, http.StatusUnprocessableEntity, "validation failed", d)
		return
	}
	next(bodyReadContext{ctx})
}

type readCloser struct {
	io.Reader
	io.Closer
}

// bodyReadContext is the context of a request whose body has been read in
// full: it ignores read deadlines. huma sets one (the operation's
// BodyReadTimeout, 5 s) before it reads the body; once the body is read,
// net/http reads the connection in the background to notice a client
// going away, and a deadline reached by that read cancels the request's
// context: an operation still running 5 s after its body was read would
// fail with "request cancelled".
type bodyReadContext struct{ humaContext }

// humaContext names the embedded field of bodyReadContext other than
// Context, one of huma.Context's methods.
type humaContext = huma.Context

func (bodyReadContext) SetReadDeadline(time.Time) error { return nil }

// Unwrap lets humago.Unwrap reach the request.
func (c bodyReadContext) Unwrap() huma.Context { return c.humaContext }

// jsonTextProblem finds the first string of the JSON document raw, key or
// value, that the database could not store, and returns a problem at its
// location under prefix (body.context.note, body.tags[2]), or nil. A
// malformed document yields nil: decoding reports it.
func jsonTextProblem(raw []byte, prefix string) *huma.ErrorDetail {
	// Only an escape (\u0000, \ud800) or a byte that is not UTF-8 can
	// carry what is refused: raw control characters are not JSON.
	if utf8.Valid(raw) && !bytes.Contains(raw, []byte(`\u`)) {
		return nil
	}
	type frame struct {
		object  bool
		key     string
		index   int
		wantKey bool
	}
	var stack []frame
	path := func(withTop bool) string {
		var b strings.Builder
		b.WriteString(prefix)
		for i, f := range stack {
			if i == len(stack)-1 && !withTop {
				break
			}
			if f.object {
				b.WriteString(".")
				b.WriteString(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	advance := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.object {
			top.wantKey = true
		} else {
			top.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	prev := dec.InputOffset()
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		end := dec.InputOffset()
		seg := raw[prev:end]
		prev = end
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				advance()
			}
		case string:
			if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantKey {
				if msg := stringProblem(seg, v); msg != "" {
					return fieldError(path(false), "a key "+msg)
				}
				stack[n-1].key, stack[n-1].wantKey = v, false
				continue
			}
			if msg := stringProblem(seg, v); msg != "" {
				return fieldError(path(true), msg)
			}
			advance()
		default:
			advance()
		}
	}
}

// stringProblem checks one JSON string: seg is its encoding (with the
// separators before it), v its decoded value.
func stringProblem(seg []byte, v string) string {
	if !utf8.Valid(seg) {
		return "is not valid UTF-8"
	}
	if msg := contracts.TextProblem(v); msg != "" {
		return msg
	}
	if lone := loneSurrogate(seg); lone != "" {
		return "contains an unpaired UTF-16 surrogate (" + lone + "), which is not a character"
	}
	return ""
}

// loneSurrogate returns the first \uXXXX escape of seg that is half of a
// UTF-16 surrogate pair without its other half, or "".
func loneSurrogate(seg []byte) string {
	hex := func(i int) (rune, bool) {
		if i+6 > len(seg) || seg[i] != '\\' || seg[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(seg[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(seg); i++ {
		if seg[i] != '\\' {
			continue
		}
		r, ok := hex(i)
		if !ok {
			i++ // an escape such as \\ or \"
			continue
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			if lo, ok := hex(i + 6); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				i += 11
				continue
			}
			return string(seg[i : i+6])
		case r >= 0xDC00 && r <= 0xDFFF:
			return string(seg[i : i+6])
		}
		i += 5
	}
	return ""
}
