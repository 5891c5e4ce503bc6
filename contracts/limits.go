package contracts

import (
	"math"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Limits shared by every place a value enters: template validation
// (runner/workflow), the management API's schemas (the maxLength, minimum
// and maximum tags of openapi's input types, which a test compares with
// these) and its Connect mirror, and the database columns they end up in
// (runner/store/migrations). Lengths count characters, as PostgreSQL's
// length() and JSON Schema's maxLength do.
const (
	// MaxNamespaceLen is the longest namespace name: its LISTEN channel,
	// "tasker_" + name, must fit PostgreSQL's 63-byte identifiers (the
	// namespaces_name_format check of tasker.namespaces).
	MaxNamespaceLen = 56
	// MaxTemplateNameLen is the longest template name (tasker.templates.name).
	MaxTemplateNameLen = 128
	// MaxVersionLen is the longest template version (tasker.templates.version).
	MaxVersionLen = 64
	// MaxStepNameLen is the longest step name of a template.
	MaxStepNameLen = 128
	// MaxCallableLen is the longest handler callable of a template step.
	MaxCallableLen = 500
	// MaxPatternLen is the longest handler endpoint pattern
	// (tasker.handler_endpoints.pattern).
	MaxPatternLen = 255
	// MaxURLLen is the longest handler endpoint URL
	// (tasker.handler_endpoints.url).
	MaxURLLen = 2048
	// MaxIdempotencyKeyLen is the longest idempotency key
	// (tasker.tasks.idempotency_key).
	MaxIdempotencyKeyLen = 255
	// MaxInitiatorLen bounds a task's initiator and source_system.
	MaxInitiatorLen = 255
	// MaxReasonLen bounds the reasons of tasks and manual changes.
	MaxReasonLen = 1024
	// MaxTags is the most tags a task may carry, each at most MaxTagLen.
	MaxTags   = 64
	MaxTagLen = 255
	// MaxTemplateBytes is the largest task template document, YAML or
	// JSON, however it arrives: parsed by runner/workflow, sent to the
	// management API as the body itself or inside a JSON string, or read
	// by the CLI from a file.
	MaxTemplateBytes = 1 << 20

	// MinInt32 and MaxInt32 bound every value stored in an integer
	// column: task priority, timeouts, limits and breaker settings.
	MinInt32 = math.MinInt32
	MaxInt32 = math.MaxInt32
)

// NamespacePattern is what a namespace name looks like (the
// namespaces_name_format check of tasker.namespaces): lowercase letters,
// digits, '_', '.' and '-', at most [MaxNamespaceLen] characters.
var NamespacePattern = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]{0,55}$`)

// TextProblem says why PostgreSQL would refuse s as text or inside jsonb,
// or returns "": s contains a NUL character (U+0000, SQLSTATE 22P05 in
// jsonb, 22021 in text) or is not valid UTF-8 (22021).
func TextProblem(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if strings.IndexByte(s, 0) >= 0 {
		return "contains a NUL character (U+0000), which cannot be stored"
	}
	return ""
}
