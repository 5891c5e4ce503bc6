package contracts

import "encoding/json"

// StepEnvelope is what a handler receives for one step: the task, the step,
// its definition from the template, and the results of every ancestor step
// by step name.
type StepEnvelope struct {
	// EventID identifies this delivery (one per attempt); handlers may log it.
	EventID           string                `json:"event_id"`
	Task              TaskInfo              `json:"task"`
	Step              StepInfo              `json:"step"`
	StepDefinition    StepDefinition        `json:"step_definition"`
	DependencyResults map[string]StepResult `json:"dependency_results"`
}

// TaskInfo describes the task (workflow run) a step belongs to.
type TaskInfo struct {
	TaskUUID            string          `json:"task_uuid"`
	Namespace           string          `json:"namespace"`
	Name                string          `json:"name"`
	Version             string          `json:"version"`
	Context             json.RawMessage `json:"context"`
	CorrelationID       string          `json:"correlation_id"`
	ParentCorrelationID string          `json:"parent_correlation_id,omitempty"`
	Priority            int             `json:"priority"`
	Tags                []string        `json:"tags"`
}

// StepInfo describes the step being run. Attempts counts this attempt: it
// is 1 on the first call.
type StepInfo struct {
	StepUUID         string          `json:"step_uuid"`
	Name             string          `json:"name"`
	TemplateStepName string          `json:"template_step_name"`
	Attempts         int             `json:"attempts"`
	MaxAttempts      int             `json:"max_attempts"`
	Retryable        bool            `json:"retryable"`
	Inputs           json.RawMessage `json:"inputs"`
	Checkpoint       json.RawMessage `json:"checkpoint,omitempty"`
}

// StepDefinition is the step's part of the task template.
type StepDefinition struct {
	Handler        HandlerDefinition `json:"handler"`
	Dependencies   []string          `json:"dependencies"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty"`
}

// HandlerDefinition names the handler and how to call it.
type HandlerDefinition struct {
	Callable       string         `json:"callable"`
	Method         string         `json:"method,omitempty"`
	Initialization map[string]any `json:"initialization,omitempty"`
}
