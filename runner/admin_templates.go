package runner

import (
	"context"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// TemplateFilter selects templates for [Client.ListTemplates].
type TemplateFilter struct {
	Namespace string
	Name      string
	// Before continues a listing: templates registered before this id.
	Before int64
	Limit  int
}

// ListTemplates returns a page of registered templates, most recently
// registered first, and whether more follow.
func (c *Client) ListTemplates(ctx context.Context, f TemplateFilter) ([]TemplateSummary, bool, error) {
	rows, more, err := store.ListTemplates(ctx, c.db, store.TemplateFilter(f))
	return convertAll(rows, func(r store.TemplateSummary) TemplateSummary { return TemplateSummary(r) }), more, adminError(err)
}

// GetTemplate returns a registered template version; version "" is the
// latest.
func (c *Client) GetTemplate(ctx context.Context, namespace, name, version string) (Template, error) {
	row, err := store.GetTemplate(ctx, c.db, namespace, name, version)
	return templateFromRow(row), adminError(err)
}

// GetTemplateByID returns a registered template version by its id
// ([TemplateInfo.ID]).
func (c *Client) GetTemplateByID(ctx context.Context, id int64) (Template, error) {
	row, err := store.GetTemplateByID(ctx, c.db, id)
	return templateFromRow(row), adminError(err)
}
