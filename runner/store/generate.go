package store

// schema.sql is the schema the migrations leave, for reading (a test fails
// when it is stale).
//go:generate go test -run ^TestSchemaSnapshot$ . -count=1 -args -update-schema
