package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// APIVersion is the version of the API described by the OpenAPI document
// (info.version). It changes with the API, not with every build, so the
// exported document is stable.
const APIVersion = "1.0.0"

// Spec returns the OpenAPI 3.1 document of the API as "yaml" or "json".
// It builds the server without a database: every operation registers
// without live dependencies.
func Spec(format string) ([]byte, error) {
	api := New(Config{}).API().OpenAPI()
	switch strings.ToLower(format) {
	case "yaml", "yml", "":
		return api.YAML()
	case "json":
		return indentJSON(api.MarshalJSON())
	}
	return nil, fmt.Errorf("openapi: unknown spec format %q: want yaml or json", format)
}

// Spec30 returns the document downgraded to OpenAPI 3.0.3 by huma (type
// arrays with "null" become nullable, examples become example), for
// generators that do not read 3.1 yet, as "yaml" or "json".
func Spec30(format string) ([]byte, error) {
	api := New(Config{}).API().OpenAPI()
	switch strings.ToLower(format) {
	case "yaml", "yml", "":
		return api.DowngradeYAML()
	case "json":
		return indentJSON(api.Downgrade())
	}
	return nil, fmt.Errorf("openapi: unknown spec format %q: want yaml or json", format)
}

// indentJSON makes a marshalled document stable and readable on disk.
func indentJSON(b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}
