package openapi

//go:generate go run ../cmd/tasker-runner openapi --out openapi.yaml
