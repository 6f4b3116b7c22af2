package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mau.fi/util/dbutil"
	wastore "go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
)

// sessionWriter writes the Signal sessions of one send in one statement.
//
// whatsmeow's SQL store runs a transaction with one statement per session
// (store/sqlstore/store.go PutManySessions, still so upstream), and whatsmeow
// calls it before every message it sends, inside its send lock: on
// PostgreSQL that was four round trips per message instead of one
// (docs/QUEUE.md, change 11). Same rows, same atomicity (one statement).
// The statement goes through whatsmeow's own database handle, so a
// transaction whatsmeow carries in ctx includes it.
type sessionWriter struct {
	wastore.SessionStore
	db     *dbutil.Database
	ourJID string
	fence  fence
}

// fence names the lease holding a device's session writes belong to
// (FencedDevice); an empty token fences nothing.
type fence struct {
	sessionID, token string
}

// ErrFenced is the error of a session write refused because the lease it
// was made under is no longer the account's.
var ErrFenced = errors.New("this process no longer holds the account's lease")

// withSessionWriter puts a sessionWriter beneath whatever else decorates
// the store; any store but whatsmeow's SQL store is left as it is.
func withSessionWriter(db *dbutil.Database, f fence) func(wastore.SessionStore) wastore.SessionStore {
	return func(inner wastore.SessionStore) wastore.SessionStore {
		sq, ok := inner.(*sqlstore.SQLStore)
		if !ok {
			return inner
		}
		return &sessionWriter{SessionStore: inner, db: db, ourJID: sq.JID, fence: f}
	}
}

const putManySessionsQuery = `INSERT INTO whatsmeow_sessions (our_jid, their_id, session) VALUES %s
	ON CONFLICT (our_jid, their_id) DO UPDATE SET session=excluded.session`

// fencedPutManySessionsQuery writes the rows only while the lease holding
// is still the account's, in the same statement, so no write can land
// after another holding began (blacksky_leases is written under the lock,
// before the next holder reads any session). VALUES columns are column1..3
// on both databases; the WHERE also settles SQLite's upsert-after-SELECT
// ambiguity.
const fencedPutManySessionsQuery = `INSERT INTO whatsmeow_sessions (our_jid, their_id, session)
	SELECT column1, column2, column3 FROM (VALUES %s) AS v
	WHERE EXISTS (SELECT 1 FROM blacksky_leases WHERE session_id = $2 AND token = $3)
	ON CONFLICT (our_jid, their_id) DO UPDATE SET session=excluded.session`

func (w *sessionWriter) PutManySessions(ctx context.Context, sessions map[string][]byte) error {
	if len(sessions) == 0 {
		return nil
	}
	fenced := w.fence.token != ""
	query, args := putManySessionsQuery, []any{w.ourJID}
	if fenced {
		query, args = fencedPutManySessionsQuery, []any{w.ourJID, w.fence.sessionID, w.fence.token}
	}
	// PostgreSQL must be told the types inside a VALUES list under a SELECT.
	row := "($1, $%d, $%d)"
	if fenced && w.db.Dialect == dbutil.Postgres {
		row = "($1::text, $%d::text, $%d::bytea)"
	}
	values := make([]string, 0, len(sessions))
	for addr, sess := range sessions {
		values = append(values, fmt.Sprintf(row, len(args)+1, len(args)+2))
		args = append(args, addr, sess)
	}
	res, err := w.db.Exec(ctx, fmt.Sprintf(query, strings.Join(values, ", ")), args...)
	if err != nil {
		return fmt.Errorf("store %d signal sessions: %w", len(sessions), err)
	}
	if fenced {
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return fmt.Errorf("store %d signal sessions: %w", len(sessions), ErrFenced)
		}
	}
	return nil
}
