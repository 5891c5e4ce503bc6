// Package openapi is tasker-runner's management API: huma operations served
// over the standard library router, described by OpenAPI 3.1.
//
// A [Server] is built from a [Config] naming the health [Check]s it reports;
// [Server.Handler] returns the http.Handler to serve.
package openapi
