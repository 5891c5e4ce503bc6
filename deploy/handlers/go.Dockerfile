# syntax=docker/dockerfile:1
# The Go example handler service. Build from the repository root (it imports
# the module's contracts package):
#   docker build -f deploy/handlers/go.Dockerfile -t tasker-handler-go .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/go-handler ./examples/handlers/go

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/go-handler /usr/local/bin/go-handler
USER nonroot:nonroot
ENV PORT=8091
EXPOSE 8091
ENTRYPOINT ["/usr/local/bin/go-handler"]
