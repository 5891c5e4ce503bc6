package store

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"
)

// IsUnavailable reports whether err means the database could not be
// reached or went away, rather than refusing the request or failing
// because of a bug. Such an error is transient: the same request may
// succeed once the database is back, so the management API answers it
// with 503 and a Retry-After header, and the Connect mirror with
// Unavailable.
//
// It is true for:
//
//   - a failed connection attempt ([*pgconn.ConnectError]: connection
//     refused, no such socket, unknown host, connect timeout, the server
//     starting up or shutting down), unless the server itself refused
//     the login for another reason (a wrong password or an unknown
//     database is a configuration error, not an outage);
//   - server errors of SQLSTATE class 08 (connection exception), 57P01
//     admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now and
//     53300 too_many_connections ([*pgconn.PgError]);
//   - a connection lost under a query: EOF or unexpected EOF, connection
//     reset or aborted, broken pipe, and any other [net.Error];
//   - errors pgconn marks safe to retry ([pgconn.SafeToRetry]: nothing
//     was sent) or as timeouts ([pgconn.Timeout]), except "conn busy",
//     which is a misuse of a connection;
//   - [context.DeadlineExceeded], such as a deadline passing while
//     waiting for a pooled connection;
//   - a closed pool ([puddle.ErrClosedPool]: the process is shutting
//     down).
//
// It is false for nil, for [context.Canceled] (the caller gave up) and
// for everything else, including constraint violations and other SQL
// errors.
//
// A write that failed this way may or may not have committed: a commit
// whose answer was lost looks the same as one that never arrived.
// Clients retrying writes need an idempotency key (see [NewTask]).
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// The server answered: only its outage codes count, also when
		// they come from a connection attempt.
		return unavailableCode(pgErr.Code)
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	if isConnBusy(err) {
		return false
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, puddle.ErrClosedPool),
		errors.As(err, &netErr):
		return true
	}
	return false
}

// unavailableCode reports whether a SQLSTATE says the server cannot serve
// the connection now.
func unavailableCode(code string) bool {
	switch code {
	case "57P01", // admin_shutdown
		"57P02", // crash_shutdown
		"57P03", // cannot_connect_now
		"53300": // too_many_connections
		return true
	}
	return strings.HasPrefix(code, "08") // connection_exception
}

// isConnBusy reports whether err is pgconn's "conn busy": a connection
// used by two goroutines at once, which is a bug, not an outage, although
// pgconn marks it safe to retry.
func isConnBusy(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "conn busy" {
			return true
		}
	}
	return false
}
