// Package apiclient holds the commands that call a running server's
// management API: submit, status, tasks, handlers, templates and dlq.
package apiclient
