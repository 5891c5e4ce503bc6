package auth

import (
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// Document declares the credentials in the OpenAPI document: the
// security schemes "bearer" (Authorization: Bearer, API key or JWT) and
// "apiKey" (X-API-Key), required by every /v1 operation, whose 401 and 403
// problem responses it adds. Call it after registering the operations.
// The document is the same whether auth is enabled or not, so the exported
// spec does not depend on configuration.
func Document(o *huma.OpenAPI) {
	if o.Components == nil {
		o.Components = &huma.Components{}
	}
	if o.Components.SecuritySchemes == nil {
		o.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	o.Components.SecuritySchemes["bearer"] = &huma.SecurityScheme{
		Type:        "http",
		Scheme:      "bearer",
		Description: "An API key or a JWT (HS256, RS256 or ES256) with the configured issuer and audience and a \"read\" or \"admin\" scope.",
	}
	o.Components.SecuritySchemes["apiKey"] = &huma.SecurityScheme{
		Type:        "apiKey",
		In:          "header",
		Name:        "X-API-Key",
		Description: "An API key.",
	}
	problemResponse := func(status int, desc string) *huma.Response {
		return &huma.Response{
			Description: desc,
			Content: map[string]*huma.MediaType{
				"application/problem+json": {Schema: &huma.Schema{Ref: "#/components/schemas/ErrorModel"}},
			},
		}
	}
	for p, item := range o.Paths {
		if p != "/v1" && !strings.HasPrefix(p, "/v1/") {
			continue
		}
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Options, item.Head, item.Patch, item.Trace} {
			if op == nil {
				continue
			}
			op.Security = []map[string][]string{{"bearer": {}}, {"apiKey": {}}}
			if op.Responses == nil {
				op.Responses = map[string]*huma.Response{}
			}
			if _, ok := op.Responses["401"]; !ok {
				op.Responses["401"] = problemResponse(http.StatusUnauthorized, "Unauthorized: no credential, or one not accepted")
			}
			if _, ok := op.Responses["403"]; !ok {
				op.Responses["403"] = problemResponse(http.StatusForbidden, "Forbidden: the credential's scope does not allow this operation")
			}
		}
	}
}
