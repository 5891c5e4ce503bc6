package store

// Exported for the tests of package store_test.
var (
	RetentionScanSQL   = retentionScanSQL
	RetentionDeleteSQL = retentionDeleteSQL
	// RetentionPlanSettingSQL plans the rest of the transaction as
	// DeleteExpiredTasks does.
	RetentionPlanSettingSQL = forceCustomPlansSQL
)
