// Package openapi is tasker-runner's management API: huma operations served
// over the standard library router, described by OpenAPI 3.1.
//
// A [Server] is built from a [Config] naming the health [Check]s it reports
// and the [runner.Client] its /v1 operations read and change the database
// through (without one they answer 503); [Server.Handler] returns the
// http.Handler to serve. [NewMirror] serves the same operations over
// Connect/gRPC, validated by the same schemas.
package openapi
