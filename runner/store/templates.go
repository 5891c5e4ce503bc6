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
}

// RegisterTemplate stores a template version, creating its namespace when
// new. Registering the same definition again is a no-op (created false);
// a different definition under the same version fails with
// [ErrTemplateConflict].
func RegisterTemplate(ctx context.Context, db DB, t Template) (id int64, created bool, err error) {
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
			RETURNING template_id`,
			t.Namespace, t.Name, t.Version, t.Description, t.Definition).Scan(&id)
		if err == nil {
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
