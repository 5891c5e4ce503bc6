package workflow

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a template, a task context or a step
// outcome.
type Problem struct {
	// Path locates the problem, for example "steps[2].dependencies[0]",
	// "input_schema" or "context.order.id". Empty for document-level problems
	// such as syntax errors.
	Path string `json:"path"`
	// Message says what is wrong, for example `unknown step "x"`.
	Message string `json:"message"`
	// Line is the 1-based line in the template document, when known.
	Line int `json:"line,omitempty"`
}

// String formats the problem as "path: message (line N)".
func (p Problem) String() string {
	var b strings.Builder
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	} else if p.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	if p.Path != "" && p.Line > 0 {
		b.WriteString(" (line ")
		b.WriteString(strconv.Itoa(p.Line))
		b.WriteString(")")
	}
	return b.String()
}

// ValidationError lists every problem found in one validation pass. It is
// returned by [Parse], [Template.Validate], [Template.ValidateContext] and the
// expansion methods; use errors.As to reach the problems, for instance to
// report them as RFC 9457 field errors.
type ValidationError struct {
	Problems []Problem
	// Warnings, from [Parse] only, lists what the document has that would
	// load but have no effect (see [Template.Warnings]).
	Warnings []Problem
	subject  string
}

const (
	subjectTemplate = "template"
	subjectContext  = "context"
	subjectOutcome  = "outcome"
)

func newValidationError(subject string, probs []Problem) *ValidationError {
	return &ValidationError{Problems: probs, subject: subject}
}

// Error joins all problems: "workflow: invalid template: p1; p2".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("workflow: invalid ")
	if e.subject != "" {
		b.WriteString(e.subject)
	} else {
		b.WriteString("input")
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// problems accumulates Problems.
type problems []Problem

func (ps *problems) add(path, msg string) {
	*ps = append(*ps, Problem{Path: path, Message: msg})
}
