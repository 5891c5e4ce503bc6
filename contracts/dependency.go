package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Errors that [StepEnvelope.DependencyField] and [DependencyValue] wrap, so
// a handler can tell an optional field that is absent (errors.Is(err,
// ErrFieldNotFound)) from a broken contract.
var (
	// ErrUnknownDependency: the step is not in the envelope's
	// dependency_results (not an ancestor, or not completed).
	ErrUnknownDependency = errors.New("unknown dependency")
	// ErrDependencyFailed: the dependency's result reports a failure.
	ErrDependencyFailed = errors.New("dependency failed")
	// ErrFieldNotFound: a key is missing or an index is out of range.
	ErrFieldNotFound = errors.New("not found")
)

// DependencyField returns the JSON value at path inside the `result` of the
// dependency step named step, from e.DependencyResults. A path is keys
// separated by dots, each optionally followed by array indices:
// "order.total", "items[2].sku", "[0]" (the result is an array) or "" (the
// whole result; JSON null when the dependency returned none). Keys that
// contain '.', '[' or ']' cannot be addressed this way: read the whole
// result and decode it.
//
// Errors name the step and the path up to the segment that failed, such as
// `dependency "fetch_order": result.items[5]: not found: index 5 out of
// range (3 items)`, and wrap [ErrUnknownDependency], [ErrDependencyFailed]
// or [ErrFieldNotFound] when that is the cause.
func (e *StepEnvelope) DependencyField(step, path string) (json.RawMessage, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("dependency %q: "+format, append([]any{step}, args...)...)
	}
	segs, err := parsePath(path)
	if err != nil {
		return nil, fail("path %q: %w", path, err)
	}
	dep, ok := e.DependencyResults[step]
	if !ok {
		return nil, fail("%w (dependency_results has %s)", ErrUnknownDependency, quoteList(slices.Sorted(maps.Keys(e.DependencyResults))))
	}
	if !dep.Success || dep.Status == StatusFailed {
		msg := "no error given"
		if dep.Error != nil {
			msg = dep.Error.Message
		}
		return nil, fail("%w: %s", ErrDependencyFailed, msg)
	}
	cur := dep.Result
	if len(cur) == 0 {
		cur = json.RawMessage("null")
	}
	at := "result"
	for _, s := range segs {
		parent := at
		if s.index < 0 {
			at += "." + s.key
			var obj map[string]json.RawMessage
			if firstByte(cur) != '{' || json.Unmarshal(cur, &obj) != nil {
				return nil, fail("%s: %s is %s, not an object", at, parent, kind(cur))
			}
			v, ok := obj[s.key]
			if !ok {
				return nil, fail("%s: %w: no key %q (%s has %s)", at, ErrFieldNotFound, s.key, parent, quoteList(slices.Sorted(maps.Keys(obj))))
			}
			cur = v
			continue
		}
		at += "[" + strconv.Itoa(s.index) + "]"
		var arr []json.RawMessage
		if firstByte(cur) != '[' || json.Unmarshal(cur, &arr) != nil {
			return nil, fail("%s: %s is %s, not an array", at, parent, kind(cur))
		}
		if s.index >= len(arr) {
			return nil, fail("%s: %w: index %d out of range (%d items)", at, ErrFieldNotFound, s.index, len(arr))
		}
		cur = arr[s.index]
	}
	return cur, nil
}

// DependencyValue decodes the field that [StepEnvelope.DependencyField]
// returns into a T. A JSON null leaves T's zero value, as encoding/json
// does; use a pointer T to tell null from a value.
func DependencyValue[T any](e *StepEnvelope, step, path string) (T, error) {
	var v T
	raw, err := e.DependencyField(step, path)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, fmt.Errorf("dependency %q: %s: decoding into %T: %w", step, displayPath(path), v, err)
	}
	return v, nil
}

// pathSeg is a key (index < 0) or an array index.
type pathSeg struct {
	key   string
	index int
}

// parsePath splits a DependencyField path into segments.
func parsePath(path string) ([]pathSeg, error) {
	if path == "" {
		return nil, nil
	}
	var segs []pathSeg
	for i, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if strings.Contains(key, "]") {
			return nil, errors.New("unbalanced ']' in " + strconv.Quote(part))
		}
		if key == "" && (i > 0 || rest == "" && !strings.HasPrefix(part, "[")) {
			return nil, errors.New("empty key")
		}
		if key != "" {
			segs = append(segs, pathSeg{key: key, index: -1})
		}
		if !strings.HasPrefix(part[len(key):], "[") {
			continue
		}
		// rest is "n]" or "n][m]...": every index closed, nothing after.
		for idx := part[len(key):]; idx != ""; {
			body, after, ok := strings.Cut(idx[1:], "]")
			n, err := strconv.Atoi(body)
			if !ok || err != nil || n < 0 || strings.HasPrefix(body, "+") {
				return nil, fmt.Errorf("bad index in %q: want [n] with n a non-negative integer", part)
			}
			segs = append(segs, pathSeg{index: n})
			if after != "" && after[0] != '[' {
				return nil, fmt.Errorf("%q after an index in %q: separate keys with '.'", after, part)
			}
			idx = after
		}
	}
	return segs, nil
}

// displayPath is how errors show a path: "result.order.total", "result[0]".
func displayPath(path string) string {
	if path == "" || path[0] == '[' {
		return "result" + path
	}
	return "result." + path
}

// quoteList quotes up to ten names for an error message.
func quoteList(names []string) string {
	if len(names) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for i, n := range names {
		if i == 10 {
			fmt.Fprintf(&b, " and %d more", len(names)-10)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(n))
	}
	return b.String()
}
