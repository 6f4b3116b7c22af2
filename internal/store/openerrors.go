package store

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// noDatabaseError is ErrNoDatabase with what was looked at.
type noDatabaseError string

func noDatabase(msg string) error { return noDatabaseError(msg) }

func (e noDatabaseError) Error() string        { return string(e) }
func (e noDatabaseError) Is(target error) bool { return target == ErrNoDatabase }

// configError is ErrConfig with the driver's reason, without the URL.
type configError struct {
	reason string
	err    error
}

func (e configError) Error() string {
	return "DATABASE_URL is not a connection URL PostgreSQL's driver accepts: " + e.reason
}
func (e configError) Is(target error) bool { return target == ErrConfig }
func (e configError) Unwrap() error        { return e.err }

// parseProblem is pgx's reason for refusing rawURL without the URL it
// quotes (redacted only at its best effort), or a general hint when what is
// left could still hold the password.
func parseProblem(err error, rawURL string) configError {
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+len("`: "):]
	}
	pw := ""
	if u, perr := url.Parse(rawURL); perr == nil {
		pw, _ = u.User.Password()
	}
	if strings.Contains(msg, "`") || (pw != "" && strings.Contains(msg, pw)) {
		msg = "check its port, sslmode and parameters, and the PG* variables"
	}
	return configError{reason: oneLine(msg), err: err}
}

// connectError is a failed connection to PostgreSQL told in one line: pgx
// writes one line per address and attempt (with sslmode=prefer, TLS and
// then plain text), so an unreachable server's reason came two or more
// times over several lines.
type connectError struct {
	where string
	err   error
}

func (e connectError) Error() string { return "connect to " + e.where + ": " + connectProblem(e.err) }
func (e connectError) Unwrap() error { return e.err }

// connectProblem is the one reason a connection failed: what the server
// said, or why no server was reached.
func connectProblem(err error) string {
	var pgErr *pgconn.PgError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &pgErr):
		return "the server refused: " + pgErr.Message + " (SQLSTATE " + pgErr.Code + ")"
	case errors.As(err, &dnsErr):
		return dnsErr.Error()
	case errors.As(err, &opErr) && opErr.Err != nil:
		return opErr.Err.Error()
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		return "no answer in time"
	}
	// The innermost reason is the last one pgx wrote.
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	return oneLine(lines[len(lines)-1])
}

// oneLine folds a message onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
