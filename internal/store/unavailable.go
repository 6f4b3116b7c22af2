package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

// IsUnavailable reports whether err says the database cannot serve the
// request now (unreachable, restarting, shutting down, out of disk, busy,
// its file deleted under it) rather than that it refused the statement:
// what a client may try again later, so the API answers it with 503 and
// Retry-After, not 500.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	var se *sqlite.Error
	switch {
	case errors.As(err, &ne), errors.As(err, &ce),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, sqlitedb.ErrFileGone), errors.Is(err, ErrDiskFull),
		errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &pe):
		// 08: connection exceptions; 53: insufficient resources (53100 disk
		// full); 57P0x: the server shuts down, crashed, or cannot take
		// connections yet.
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "53") || strings.HasPrefix(pe.Code, "57P")
	case errors.As(err, &se):
		switch se.Code() & 0xff {
		case sqliteBusy, sqliteLocked, sqliteIOErr, sqliteFull, sqliteCantOpen:
			return true
		}
	}
	return false
}

// SQLite's primary result codes that say "not now" (sqlite3.h).
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteIOErr    = 10
	sqliteFull     = 13
	sqliteCantOpen = 14
)
