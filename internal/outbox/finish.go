package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// The outcomes of a claim. Each applies only while this process still holds
// the claim (owner and attempt number match), so a process that lost its
// lease cannot overwrite what another did with the message since.
const ownedClaim = `session_id = $1 AND id = $2 AND state = 'sending' AND lease_owner = $3 AND attempts = $4`

// markSentSQL records a delivered message.
const markSentSQL = `UPDATE blacksky_outbox
	SET state = 'sent', sent_at = $5, updated_at = $5, last_error = '', lease_owner = NULL, lease_until = NULL
	WHERE ` + ownedClaim

// sentCall is a delivered message waiting for its batch to record it.
type sentCall struct {
	call
	m   Message
	at  int64 // sent_at
	ok  bool
	err error
}

// markSent records a delivered message, in one transaction with those
// other workers deliver meanwhile. It reports false when this process no
// longer held the claim.
func (q *Queue) markSent(ctx context.Context, m Message) (bool, error) {
	c := &sentCall{call: newCall(), m: m, at: ms(q.now())}
	if err := q.sends.do(ctx, c, c.done); err != nil {
		return false, fmt.Errorf("mark message sent %d: %w", m.ID, err)
	}
	return c.ok, c.err
}

func (c *sentCall) fail(err error) { c.ok, c.err = false, err }

// writeSent records a batch of delivered messages in one transaction.
func (q *Queue) writeSent(ctx context.Context, batch []*sentCall) error {
	return q.inTx(ctx, "mark messages sent", func(tx *sql.Tx) error {
		for _, c := range batch {
			ok, err := q.finishIn(ctx, tx, "mark message sent", c.m, markSentSQL, c.at)
			if err != nil {
				return err
			}
			c.ok = ok
		}
		if err := q.settled(ctx, tx, sentMessages(batch)); err != nil {
			return fmt.Errorf("mark messages sent: %w", err)
		}
		return nil
	})
}

// inTx runs f in a transaction and commits it if f succeeds; op names the
// work in errors.
func (q *Queue) inTx(ctx context.Context, op string, f func(tx *sql.Tx) error) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: begin: %w", op, err)
	}
	defer tx.Rollback()
	if err := f(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: commit: %w", op, err)
	}
	return nil
}

// sentMessages is the batch's messages this process recorded as sent, as they now are.
func sentMessages(batch []*sentCall) []Message {
	var out []Message
	for _, c := range batch {
		if c.ok {
			m := c.m
			m.State, m.SentAt, m.UpdatedAt, m.LastError = Sent, fromMS(c.at), fromMS(c.at), ""
			m.LeaseOwner, m.LeaseUntil = "", time.Time{}
			out = append(out, m)
		}
	}
	return out
}

// settled passes messages that became sent or dead to Options.Settled, in tx.
func (q *Queue) settled(ctx context.Context, tx *sql.Tx, msgs []Message) error {
	if q.opts.Settled == nil || len(msgs) == 0 {
		return nil
	}
	if err := withLIDs(ctx, tx, msgs); err != nil {
		return err
	}
	return q.opts.Settled(ctx, tx, msgs)
}

// markDead gives up on a message with reason.
func (q *Queue) markDead(ctx context.Context, m Message, reason string) (bool, error) {
	now := ms(q.now())
	op := fmt.Sprintf("mark message dead %d", m.ID)
	var ok bool
	err := q.inTx(ctx, op, func(tx *sql.Tx) error {
		var err error
		ok, err = q.finishIn(ctx, tx, "mark message dead", m, `UPDATE blacksky_outbox
			SET state = 'dead', last_error = $5, updated_at = $6, lease_owner = NULL, lease_until = NULL
			WHERE `+ownedClaim, reason, now)
		if err != nil || !ok {
			return err
		}
		m.State, m.LastError, m.UpdatedAt, m.LeaseOwner, m.LeaseUntil = Dead, reason, fromMS(now), "", time.Time{}
		if err := q.settled(ctx, tx, []Message{m}); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
	return ok && err == nil, err
}

// reschedule makes a message pending again for another attempt at runAt.
func (q *Queue) reschedule(ctx context.Context, m Message, reason string, runAt time.Time) (bool, error) {
	now := ms(q.now())
	return q.finish(ctx, "reschedule message", m, `UPDATE blacksky_outbox
		SET state = 'pending', last_error = $5, run_at = $6, updated_at = $7, lease_owner = NULL, lease_until = NULL
		WHERE `+ownedClaim, reason, ms(runAt), now)
}

// handBack returns a claimed message unsent, refunding the attempt: it
// was not the message's fault (shutdown, connection gone).
func (q *Queue) handBack(ctx context.Context, m Message) (bool, error) {
	now := ms(q.now())
	return q.finish(ctx, "hand back message", m, `UPDATE blacksky_outbox
		SET state = 'pending', attempts = attempts - 1, updated_at = $5, lease_owner = NULL, lease_until = NULL
		WHERE `+ownedClaim, now)
}

func (q *Queue) finish(ctx context.Context, op string, m Message, query string, args ...any) (bool, error) {
	return q.finishIn(ctx, q.db, op, m, query, args...)
}

// finishIn applies a claim's outcome with db, which may be a transaction.
func (q *Queue) finishIn(ctx context.Context, db querier, op string, m Message, query string, args ...any) (bool, error) {
	args = append([]any{q.opts.Session, m.ID, q.opts.Owner, m.Attempts}, args...)
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return false, fmt.Errorf("%s %d: %w", op, m.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s %d: %w", op, m.ID, err)
	}
	return n == 1, nil
}
