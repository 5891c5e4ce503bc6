package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// ErrTemplateUnloadable wraps the error of a stored template definition
// that does not parse (registered by a release with other limits): its
// tasks cannot be created nor run. Delete the template version.
var ErrTemplateUnloadable = errors.New("the stored template definition cannot be loaded")

// templateCache keeps parsed templates by id. Template versions are
// immutable (see store.RegisterTemplate), so entries never go stale.
type templateCache struct {
	db store.DB
	mu sync.Mutex
	m  map[int64]*cachedTemplate
}

type cachedTemplate struct {
	row  store.Template
	tpl  *workflow.Template
	once sync.Once
	err  error
	// grows is tpl.Grows(): outcomes of its tasks' steps may add steps.
	grows bool
}

func newTemplateCache(db store.DB) *templateCache {
	return &templateCache{db: db, m: map[int64]*cachedTemplate{}}
}

func (c *templateCache) get(ctx context.Context, id int64) (*cachedTemplate, error) {
	c.mu.Lock()
	e, ok := c.m[id]
	if !ok {
		e = &cachedTemplate{}
		c.m[id] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		e.row, e.err = store.GetTemplateByID(ctx, c.db, id)
		if e.err == nil {
			e.tpl = new(workflow.Template)
			if err := json.Unmarshal(e.row.Definition, e.tpl); err != nil {
				e.err = fmt.Errorf("runner: template %s/%s@%s (id %d): %w: %w", e.row.Namespace, e.row.Name, e.row.Version, id, ErrTemplateUnloadable, err)
			}
			e.grows = e.tpl.Grows()
		}
	})
	if e.err != nil {
		// Do not cache failures (the database may have been briefly away).
		c.mu.Lock()
		if c.m[id] == e {
			delete(c.m, id)
		}
		c.mu.Unlock()
		return nil, e.err
	}
	return e, nil
}

// forget drops a template (deleted) from the cache.
func (c *templateCache) forget(id int64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}

// put caches a template just registered or loaded.
func (c *templateCache) put(row store.Template, tpl *workflow.Template) *cachedTemplate {
	e := &cachedTemplate{row: row, tpl: tpl, grows: tpl.Grows()}
	e.once.Do(func() {})
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[row.ID]; ok && old.tpl != nil {
		return old
	}
	c.m[row.ID] = e
	return e
}
