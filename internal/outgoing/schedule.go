package outgoing

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// nextDue is the earliest time after now at which something may become
// claimable without a wake-up: a retry's run_at, a lease running out, or a
// chat's gap ending. The zero time means nothing is scheduled.
func (q *Queue) nextDue(ctx context.Context) (time.Time, error) {
	next, _, err := q.jobs.NextDue(ctx)
	return next, err
}

// rateBudget is how many sends RatePerMinute allows now, counting messages
// sent in the last minute and those being sent under a live lease, by any
// process (a lease that ran out belongs to a dead process and must not
// block its own rescue); with no budget left it also returns when the
// oldest of those leaves the window.
func (q *Queue) rateBudget(ctx context.Context) (int, time.Time, error) {
	if q.opts.RatePerMinute <= 0 {
		return q.opts.Workers, time.Time{}, nil
	}
	now := q.now()
	var used int
	var oldest sql.NullInt64
	err := q.db.QueryRowContext(ctx, `SELECT count(*), min(sent_at) FROM blacksky_outbox
		WHERE session_id = $1 AND ((state = 'sent' AND sent_at > $2) OR (state = 'sending' AND lease_until > $3))`,
		q.opts.Session, ms(now.Add(-time.Minute)), ms(now)).Scan(&used, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count recent sends: %w", err)
	}
	budget := q.opts.RatePerMinute - used
	if budget > 0 {
		return budget, time.Time{}, nil
	}
	if !oldest.Valid {
		// Only sends in flight fill the window; their completion wakes us.
		return 0, time.Time{}, nil
	}
	return 0, fromMS(oldest.Int64).Add(time.Minute), nil
}

// expireBatch bounds how many expired messages one transaction takes, and
// so the memory for handing them to Settled.
const expireBatch = 500

// expire sends pending messages older than TTL to dead.
func (q *Queue) expire(ctx context.Context) error {
	for {
		n, err := q.expireSome(ctx)
		if err != nil || n < expireBatch {
			return err
		}
	}
}

// expireSome sends up to expireBatch expired messages to dead and says how many.
func (q *Queue) expireSome(ctx context.Context) (int, error) {
	now := q.now()
	var expired []Message
	err := q.inTx(ctx, "expire old messages", func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE blacksky_outbox
			SET state = 'dead', last_error = $3, updated_at = $4
			WHERE state = 'pending' AND id IN (SELECT id FROM blacksky_outbox
				WHERE session_id = $1 AND state = 'pending' AND queued_at <= $2 ORDER BY id LIMIT $5)
			RETURNING `+columns,
			q.opts.Session, ms(now.Add(-q.opts.TTL)), expiredReason(q.opts.TTL), ms(now), expireBatch)
		if err == nil {
			expired, err = scanAll(rows)
		}
		if err == nil {
			err = q.settled(ctx, tx, expired)
		}
		if err != nil {
			return fmt.Errorf("expire old messages: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if n := len(expired); n > 0 {
		q.stats.dead(reasonExpired, n)
		q.log.Warn("messages expired unsent", "count", n, "ttl", q.opts.TTL)
	}
	return len(expired), nil
}

func expiredReason(ttl time.Duration) string {
	return fmt.Sprintf("expired: not sent within %s (OUTGOING_TTL)", ttl)
}
