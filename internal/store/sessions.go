package store

import (
	"context"
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
}

// withSessionWriter puts a sessionWriter beneath whatever else decorates
// the store; any store but whatsmeow's SQL store is left as it is.
func withSessionWriter(db *dbutil.Database) func(wastore.SessionStore) wastore.SessionStore {
	return func(inner wastore.SessionStore) wastore.SessionStore {
		sq, ok := inner.(*sqlstore.SQLStore)
		if !ok {
			return inner
		}
		return &sessionWriter{SessionStore: inner, db: db, ourJID: sq.JID}
	}
}

const putManySessionsQuery = `INSERT INTO whatsmeow_sessions (our_jid, their_id, session) VALUES %s
	ON CONFLICT (our_jid, their_id) DO UPDATE SET session=excluded.session`

func (w *sessionWriter) PutManySessions(ctx context.Context, sessions map[string][]byte) error {
	if len(sessions) == 0 {
		return nil
	}
	values := make([]string, 0, len(sessions))
	args := make([]any, 1, 1+2*len(sessions))
	args[0] = w.ourJID
	for addr, sess := range sessions {
		values = append(values, fmt.Sprintf("($1, $%d, $%d)", len(args)+1, len(args)+2))
		args = append(args, addr, sess)
	}
	if _, err := w.db.Exec(ctx, fmt.Sprintf(putManySessionsQuery, strings.Join(values, ", ")), args...); err != nil {
		return fmt.Errorf("store %d signal sessions: %w", len(sessions), err)
	}
	return nil
}
