package openapi

import (
	"context"
	"encoding/json"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/openapi/auth"
)

// A failure made from a reply that is not a step result keeps the reply's
// first bytes in metadata.response_excerpt ([callout.MetadataResponseExcerpt]).
// The reply may come from a service only the runner can reach (a handler
// URL pointing somewhere internal), so only admin-scoped callers, or every
// caller when auth is off, read it; read-scoped callers get the error with
// the excerpt removed and a note saying so.

// excerptHiddenNote ends the message of a failure whose excerpt was removed.
const excerptHiddenNote = " (reply excerpt hidden: needs admin scope)"

// showsExcerpts reports whether the caller of ctx may read reply excerpts.
func showsExcerpts(ctx context.Context) bool {
	p, ok := auth.PrincipalFrom(ctx)
	return !ok || p.Scope == auth.ScopeAdmin
}

// hideExcerpt returns a stored step result (last_error, or the results of
// a batch worker that completed with its failure) without its reply
// excerpt. Anything else is returned as it is.
func hideExcerpt(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	var res map[string]json.RawMessage
	if json.Unmarshal(raw, &res) != nil {
		return raw
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(res["metadata"], &meta) != nil {
		return raw
	}
	if _, ok := meta[callout.MetadataResponseExcerpt]; !ok {
		return raw
	}
	delete(meta, callout.MetadataResponseExcerpt)
	delete(meta, "response_bytes")
	if len(meta) == 0 {
		delete(res, "metadata")
	} else {
		res["metadata"] = mustMarshal(meta)
	}
	var stepErr map[string]json.RawMessage
	if json.Unmarshal(res["error"], &stepErr) == nil && stepErr != nil {
		var msg string
		_ = json.Unmarshal(stepErr["message"], &msg)
		stepErr["message"] = mustMarshal(msg + excerptHiddenNote)
		res["error"] = mustMarshal(stepErr)
	}
	return mustMarshal(res)
}

// hideTransitionExcerpt does [hideExcerpt] to the error a failure's
// transition records in its metadata.
func hideTransitionExcerpt(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return raw
	}
	var meta map[string]json.RawMessage
	if json.Unmarshal(raw, &meta) != nil || meta["error"] == nil {
		return raw
	}
	hidden := hideExcerpt(meta["error"])
	if string(hidden) == string(meta["error"]) {
		return raw
	}
	meta["error"] = hidden
	return mustMarshal(meta)
}

// hideStepExcerpts removes reply excerpts from a step for a caller that
// may not read them.
func hideStepExcerpts(ctx context.Context, st *Step) {
	if showsExcerpts(ctx) {
		return
	}
	st.LastError = hideExcerpt(st.LastError)
	st.Results = hideExcerpt(st.Results)
}

// hideTransitionExcerpts does the same to a list of transitions.
func hideTransitionExcerpts(ctx context.Context, ts []Transition) {
	if showsExcerpts(ctx) {
		return
	}
	for i := range ts {
		ts[i].Metadata = hideTransitionExcerpt(ts[i].Metadata)
	}
}

func mustMarshal(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of raw JSON and strings always encode
	}
	return b
}
