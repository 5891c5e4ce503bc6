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
		b, err := api.MarshalJSON()
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
	return nil, fmt.Errorf("openapi: unknown spec format %q: want yaml or json", format)
}
