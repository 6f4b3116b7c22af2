package outgoing

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// The watchdog: a message WhatsApp's server took but no device of the
// recipient reported having within Options.DeliveryTimeout is flagged
// undelivered (its state, a metric and, through Settled, a webhook event),
// so a message that never arrives is never silently left at "sent". The
// flag is not a failure: WhatsApp keeps the message for a recipient whose
// phone is off, and a delivery receipt that comes later moves it on. It
// runs on the dispatcher, so only while connected: a receipt cannot reach
// a process that is not, and one waiting at the server comes at login.

// watchBatch bounds the messages one sweep flags, so its transaction
// stays short after a long outage; the next sweep takes the rest.
const watchBatch = 500

// watchInterval is how often the dispatcher sweeps: a tenth of the
// timeout, between 100 ms and 30 s, so a flag comes at most that late;
// never with the watchdog off.
func (q *Queue) watchInterval() time.Duration {
	if q.opts.DeliveryTimeout < 0 {
		return time.Duration(1<<63 - 1)
	}
	return min(max(q.opts.DeliveryTimeout/10, 100*time.Millisecond), 30*time.Second)
}

// flagUndelivered flags the sent messages whose delivery timeout passed,
// oldest first, up to watchBatch; it returns how many.
func (q *Queue) flagUndelivered(ctx context.Context) (int, error) {
	if q.opts.DeliveryTimeout < 0 {
		return 0, nil
	}
	now := q.now()
	var flagged []Message
	err := q.inTx(ctx, "flag undelivered messages", func(tx *sql.Tx) error {
		query := "SELECT " + columns + ` FROM blacksky_outbox
			WHERE session_id = $1 AND state = 'sent' AND receipt_state = '' AND sent_at <= $2
			ORDER BY sent_at LIMIT $3`
		if q.engine == store.Postgres {
			// A receipt being recorded for one of them is waited for, and
			// the message is then no longer due (receipts.go).
			query += " FOR UPDATE"
		}
		rows, err := tx.QueryContext(ctx, query, q.opts.Session, ms(now.Add(-q.opts.DeliveryTimeout)), watchBatch)
		if err != nil {
			return fmt.Errorf("find undelivered messages: %w", err)
		}
		msgs, err := scanAll(rows)
		if err != nil {
			return fmt.Errorf("find undelivered messages: %w", err)
		}
		for _, m := range msgs {
			if _, err := tx.ExecContext(ctx, `UPDATE blacksky_outbox SET receipt_state = 'undelivered', undelivered_at = $1
				WHERE session_id = $2 AND id = $3`, ms(now), q.opts.Session, m.ID); err != nil {
				return fmt.Errorf("flag message %d undelivered: %w", m.ID, err)
			}
			m.State, m.UndeliveredAt = Undelivered, fromMS(ms(now))
			flagged = append(flagged, m)
		}
		return q.settled(ctx, tx, flagged)
	})
	if err != nil {
		return 0, err
	}
	q.observeSteps(flagged)
	if len(flagged) > 0 {
		q.log.Warn("sent messages had no delivery receipt within the delivery timeout; flagged undelivered",
			"count", len(flagged), "oldest_id", flagged[0].ID, "oldest_to", flagged[0].To, "timeout", q.opts.DeliveryTimeout)
	}
	return len(flagged), nil
}
