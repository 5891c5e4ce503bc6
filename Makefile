# tasker-runner. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/tasker-runner
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
TESTFLAGS ?=

.PHONY: help run test fuzz bench bench-soak bench-river build lint generate clean postgres

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-z-]+:.*## /{printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/tasker-runner
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tasker-runner

postgres: ## make sure PostgreSQL server binaries are present (installs them with apt as root)
	@bash .ci/ensure-postgres

run: build postgres ## the demo: PostgreSQL (or DATABASE_URL), the runner, handlers in 4 languages, an order; CHAOS=go kills one
	@bash .ci/ensure-runtimes || echo "make: some example runtimes are missing; dev runs their steps in the Go example service instead (see above)"
	./$(BIN) dev $(if $(CHAOS),--chaos $(CHAOS))

test: lint ## run every test with the race detector against real PostgreSQL, then each fuzz target for 3s (FUZZTIME)
	@bash .ci/ensure-postgres --for-tests
	@bash .ci/ensure-runtimes || { \
		if [[ "$${CI:-}" =~ ^(1|[tT]|true|TRUE|True)$$ ]]; then echo "make: CI=true and example runtimes are missing (see above): stopping" >&2; exit 1; fi; \
		echo "make: some example runtimes are missing; their conformance tests will be skipped (see above)"; }
	$(GO) test -race -count=1 -timeout 20m $(TESTFLAGS) ./...
	@FUZZTIME=$(or $(FUZZTIME),3s) FUZZTIME_API=$(or $(FUZZTIME_API),3000x) bash .ci/fuzz

fuzz: postgres ## run each fuzz target for FUZZTIME (default 10m; FUZZ=regexp picks targets); failing inputs land in testdata/fuzz
	@FUZZTIME=$(or $(FUZZTIME),10m) bash .ci/fuzz

bench: build postgres ## run the benchmarks (River too, before and after the backlog): prints a table and writes bench-results.json
	./$(BIN) bench --vs-river --out bench-results.json

bench-soak: build postgres ## the 10-minute memory soak (bench --soak 10m): prints a table and writes bench-results-soak.json
	./$(BIN) bench --soak $(or $(SOAK),10m) --out bench-results-soak.json

bench-river: postgres ## River on this machine, measured like the backlog bench (cmd/riverbench, a module of its own)
	cd cmd/riverbench && $(GO) run . $(RIVERFLAGS)

lint: ## gofmt, go vet, the import-direction check and Redocly's lint of openapi/openapi.yaml (needs npx)
	@out=$$(gofmt -l $$( (git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*') | while read -r f; do [[ -e "$$f" ]] && echo "$$f"; done)); \
	if [[ -n "$$out" ]]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@bash .ci/check-imports
	@bash .ci/lint-openapi

generate: ## regenerate committed generated code (OpenAPI spec and clients, protobuf code, README command list, runner/store/schema.sql)
	$(GO) generate ./...

clean: ## remove build outputs: bin/, bench results, the TypeScript example's dist/ (not Go's shared test cache)
	rm -rf bin tasker-runner bench-results.json bench-results-soak.json examples/handlers/typescript/dist
