package store

// ChannelPrefix starts the LISTEN/NOTIFY channel of every namespace.
const ChannelPrefix = "tasker_"

// Channel is the LISTEN/NOTIFY channel on which a namespace announces ready
// steps. Namespace names are limited to 56 characters by the schema, so the
// channel always fits PostgreSQL's 63-byte identifier limit.
func Channel(namespace string) string { return ChannelPrefix + namespace }

// NamespacesChannel announces a namespace seen for the first time, so runners
// serving every namespace start listening to it. The colon cannot occur in a
// namespace name, so it never collides with a namespace channel.
const NamespacesChannel = "tasker:namespaces"
