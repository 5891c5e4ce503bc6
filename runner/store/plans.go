package store

// PostgreSQL plans a prepared statement afresh for each execution while a
// plan made for the actual parameters looks cheaper than its one generic
// plan. For Submit's step and edge inserts that is always so (a custom plan
// is costed for the arrays' actual lengths), and planning took ~0.3 ms of a
// one-task Submit for the same plan every time. Retention's scan needs the
// opposite (see [DeleteExpiredTasks]). A transaction or pipeline brackets
// such statements with a force statement and [restorePlanCacheModeSQL]:
// plan_cache_mode is forced for them and then put back, since they may be
// part of the caller's transaction.
const (
	savePlanCacheModeSQL = `
		WITH saved AS MATERIALIZED (
			SELECT set_config('tasker.saved_plan_cache_mode', current_setting('plan_cache_mode'), true)
		)
		SELECT set_config('plan_cache_mode', `
	forceGenericPlansSQL    = savePlanCacheModeSQL + `'force_generic_plan', true) FROM saved`
	forceCustomPlansSQL     = savePlanCacheModeSQL + `'force_custom_plan', true) FROM saved`
	restorePlanCacheModeSQL = `SELECT set_config('plan_cache_mode', current_setting('tasker.saved_plan_cache_mode'), true)`
)
