package client

//go:generate bash ../../.ci/generate-clients
