// Package store holds every SQL statement of tasker-runner and the embedded,
// numbered schema migrations. It speaks to PostgreSQL through pgx only.
//
// All objects live in the schema [Schema]. Migrations are applied by [Migrate]
// (or a [Migrator]) under an advisory lock, so any number of processes may
// migrate the same database at once.
package store
