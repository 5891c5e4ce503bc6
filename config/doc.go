// Package config holds tasker-runner's configuration: the types, their
// defaults, loading from a TOML file, overrides from the environment and
// validation.
//
// # Load order
//
// [Load] builds a [Config] in four steps, each one overriding the previous:
//
//  1. [Default], the values documented on every field: the engine's own
//     defaults (the XDefault constants of [runner], [workflow] and
//     [callout]) where it has one, so they are written once;
//  2. the TOML file (config/worker.toml is an example listing every key);
//  3. the environment;
//  4. [Config.Validate].
//
// Every problem found on the way (unknown keys, values of the wrong type,
// invalid values, bad environment variables) is collected and returned at
// once in an [*Error], so an operator fixes a file in one round instead of
// one error per restart.
//
// # Environment
//
// Every key can be overridden by the variable named TASKER_ followed by its
// TOML path in upper case with dots replaced by underscores:
//
//	TASKER_WORKER_WEB_PORT=9000                                      # worker.web.port
//	TASKER_WORKER_EVENT_SYSTEMS_WORKER_DEPLOYMENT_MODE=polling_only  # worker.event_systems.worker.deployment_mode
//
// [EnvVar] returns the variable for a key.
//
// Lists of strings are comma separated (TASKER_WORKER_NAMESPACES=a,b). Arrays of
// tables take a JSON array whose objects use the TOML key names
// (TASKER_WORKER_HANDLERS='[{"pattern":"x","url":"http://h/x"}]'). A
// variable set to the empty string is treated as unset. A variable that
// names no key is ignored; [EnvTypos] finds the ones that look misspelt so
// that the command can warn about them.
//
// database.url can also be set with DATABASE_URL, the name most tools and
// platforms use; when both DATABASE_URL and TASKER_DATABASE_URL are set,
// TASKER_DATABASE_URL wins because it is the more specific of the two.
package config
