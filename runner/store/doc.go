// Package store holds every SQL statement of tasker-runner and the embedded,
// numbered schema migrations. It speaks to PostgreSQL through pgx only.
//
// All objects live in the schema [Schema]. Migrations are applied by [Migrate]
// (or a [Migrator]) under an advisory lock, so any number of processes may
// migrate the same database at once. schema.sql, beside the migrations, is
// the schema they leave, as pg_dump prints it: read it for a table's or a
// trigger's current form; `make generate` rewrites it and a test fails while
// it is stale.
package store
