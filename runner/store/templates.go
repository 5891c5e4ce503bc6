package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrTemplateConflict is returned when a template version is registered
// again with a different definition: versions are immutable, so running
// tasks keep the definition they were created with.
var ErrTemplateConflict = errors.New("template version already registered with a different definition")

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// Template is a registered task template row.
type Template struct {
	ID          int64
	Namespace   string
	Name        string
	Version     string
	Description string
	// Definition is the validated template as JSON.
	Definition []byte
	CreatedAt  time.Time
	// MaxDefinitionBytes, when positive, makes [RegisterTemplate] refuse
	// (with a [*DefinitionTooLargeError], storing nothing) a new definition
	// the database would return larger than this: stored definitions are
	// read back as text with a space after every ':' and ',', so they are
	// larger than the JSON sent.
	MaxDefinitionBytes int
}

// DefinitionTooLargeError is returned by [RegisterTemplate] for a
// definition larger, as stored, than Template.MaxDefinitionBytes.
type DefinitionTooLargeError struct {
	// Size is the stored definition's size in bytes; Limit the maximum.
	Size, Limit int
}

func (e *DefinitionTooLargeError) Error() string {
	return fmt.Sprintf("store: the stored template definition would be %d bytes, more than the limit of %d", e.Size, e.Limit)
}

// RegisterTemplate stores a template version, creating its namespace when
// new. Registering the same definition again is a no-op (created false);
// a different definition under the same version fails with
// [ErrTemplateConflict].
func RegisterTemplate(ctx context.Context, db DB, t Template) (id int64, created bool, err error) {
	var size int
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			WITH ins AS (
				INSERT INTO tasker.namespaces (name) VALUES ($1) ON CONFLICT DO NOTHING RETURNING name
			)
			SELECT pg_notify($2, name) FROM ins`, t.Namespace, NamespacesChannel); err != nil {
			return fmt.Errorf("store: creating namespace %q: %w", t.Namespace, err)
		}
		err := tx.QueryRow(ctx, `
			INSERT INTO tasker.templates (namespace, name, version, description, definition)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (namespace, name, version) DO NOTHING
			RETURNING template_id, octet_length(definition::text)`,
			t.Namespace, t.Name, t.Version, t.Description, t.Definition).Scan(&id, &size)
		if err == nil {
			if t.MaxDefinitionBytes > 0 && size > t.MaxDefinitionBytes {
				return &DefinitionTooLargeError{Size: size, Limit: t.MaxDefinitionBytes}
			}
			created = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: registering template %s/%s@%s: %w", t.Namespace, t.Name, t.Version, err)
		}
		var same bool
		if err := tx.QueryRow(ctx, `
			SELECT template_id, definition = $4::jsonb FROM tasker.templates
			WHERE namespace = $1 AND name = $2 AND version = $3`,
			t.Namespace, t.Name, t.Version, t.Definition).Scan(&id, &same); err != nil {
			return fmt.Errorf("store: registering template %s/%s@%s: %w", t.Namespace, t.Name, t.Version, err)
		}
		if !same {
			return fmt.Errorf("store: %s/%s@%s: %w; register it under a new version", t.Namespace, t.Name, t.Version, ErrTemplateConflict)
		}
		return nil
	})
	return id, created, err
}

const templateColumns = `template_id, namespace, name, version, description, definition, created_at`

func scanTemplate(row pgx.Row) (Template, error) {
	var t Template
	err := row.Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.Description, &t.Definition, &t.CreatedAt)
	return t, err
}

// GetTemplate returns a template by namespace, name and version. An empty
// version picks the most recently registered one.
func GetTemplate(ctx context.Context, db DB, namespace, name, version string) (Template, error) {
	t, err := scanTemplate(db.QueryRow(ctx, `
		SELECT `+templateColumns+` FROM tasker.templates
		WHERE namespace = $1 AND name = $2 AND ($3 = '' OR version = $3)
		ORDER BY created_at DESC, template_id DESC LIMIT 1`, namespace, name, version))
	if errors.Is(err, pgx.ErrNoRows) {
		v := version
		if v == "" {
			v = "any version"
		}
		return t, fmt.Errorf("store: template %s/%s (%s): %w", namespace, name, v, ErrNotFound)
	}
	return t, err
}

// GetTemplateByID returns a template by its id.
func GetTemplateByID(ctx context.Context, db DB, id int64) (Template, error) {
	t, err := scanTemplate(db.QueryRow(ctx, `SELECT `+templateColumns+` FROM tasker.templates WHERE template_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("store: template id %d: %w", id, ErrNotFound)
	}
	return t, err
}

// ListNamespaces returns every known namespace name.
func ListNamespaces(ctx context.Context, db DB) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT name FROM tasker.namespaces ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: listing namespaces: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: listing namespaces: %w", err)
	}
	return names, nil
}

// TemplateInUseError is returned by [DeleteTemplate] for a template that
// still has unfinished tasks. Nothing was deleted.
type TemplateInUseError struct {
	Namespace, Name, Version string
	// Unfinished counts its tasks in state pending, steps_in_process or
	// blocked_by_failures.
	Unfinished int
}

func (e *TemplateInUseError) Error() string {
	return fmt.Sprintf("store: template %s/%s@%s has %d unfinished task(s) (pending, steps_in_process or blocked_by_failures): "+
		"cancel them or let them finish first", e.Namespace, e.Name, e.Version, e.Unfinished)
}

// DeleteTemplate removes a template version together with its finished
// tasks (complete, cancelled, resolved_manually), their steps and their
// history, in one transaction, and returns how many tasks went with it. A
// template with unfinished tasks is refused with a [*TemplateInUseError];
// an unknown one with an error matching [ErrNotFound]. A task submitted
// meanwhile either comes first (and the template is refused) or fails with
// [ErrTemplateDeleted].
func DeleteTemplate(ctx context.Context, db DB, namespace, name, version string) (tasks int, err error) {
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		var id int64
		// FOR UPDATE: a concurrent task insert (its foreign key check takes
		// FOR KEY SHARE) waits for this transaction, or this one for it.
		err := tx.QueryRow(ctx, `
			SELECT template_id FROM tasker.templates
			WHERE namespace = $1 AND name = $2 AND version = $3 FOR UPDATE`, namespace, name, version).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store: template %s/%s@%s: %w", namespace, name, version, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("store: deleting template %s/%s@%s: %w", namespace, name, version, err)
		}
		var unfinished int
		if err := tx.QueryRow(ctx, `
			SELECT count(*) FROM tasker.tasks
			WHERE template_id = $1 AND state IN ('pending', 'steps_in_process', 'blocked_by_failures')`, id).Scan(&unfinished); err != nil {
			return fmt.Errorf("store: deleting template %s/%s@%s: %w", namespace, name, version, err)
		}
		if unfinished > 0 {
			return &TemplateInUseError{Namespace: namespace, Name: name, Version: version, Unfinished: unfinished}
		}
		// The same statement as retention's (deleteTasksSQL): the audit
		// rows go explicitly, steps and edges cascade from the tasks. No
		// task of the template can be added meanwhile (the template row is
		// locked).
		if err := tx.QueryRow(ctx, `
			WITH doomed AS MATERIALIZED (SELECT task_uuid FROM tasker.tasks WHERE template_id = $1),`+deleteTasksSQL+`
			SELECT count(*)::int FROM gone`, id).Scan(&tasks); err != nil {
			return fmt.Errorf("store: deleting the tasks of template %s/%s@%s: %w", namespace, name, version, err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tasker.templates WHERE template_id = $1`, id); err != nil {
			return fmt.Errorf("store: deleting template %s/%s@%s: %w", namespace, name, version, err)
		}
		return nil
	})
	return tasks, err
}
