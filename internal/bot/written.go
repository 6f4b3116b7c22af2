package bot

import (
	"context"
	"database/sql"
	"fmt"
)

// HasWritten returns what the outgoing queue asks while WhatsApp's reach-out lock
// is in force (outgoing.Options.HasWritten): whether chat has written to the
// account, read from the inbox. A chat has written while the inbox keeps a
// message it sent (not one the account sent from another device): for
// Retention after the last one was handled, 7 days by default, which is
// also how long WhatsApp's trusted-contact tokens last (tctoken_duration).
// Past that a chat counts as new again, so at worst its message waits out
// a lock it might have passed; it is never sent to be refused.
func HasWritten(db *sql.DB, session string) func(ctx context.Context, chat string) (bool, error) {
	if session == "" {
		session = DefaultSession
	}
	return func(ctx context.Context, chat string) (bool, error) {
		var n int
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM blacksky_inbox
			WHERE session_id = $1 AND chat = $2 AND from_me = 0 LIMIT 1) w`, session, chat).Scan(&n)
		if err != nil {
			return false, fmt.Errorf("look up messages from %s in the inbox: %w", chat, err)
		}
		return n > 0, nil
	}
}
