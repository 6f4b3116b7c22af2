package outgoing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/jobs"
)

// The outcomes of a claim, recorded through the job engine. Each applies
// only while this process still holds the claim (owner and attempt number
// match), so a process that lost its lease cannot overwrite what another
// did with the message since: the engine's ErrLeaseLost is reported as
// false.

// sentCall is a delivered message waiting for its batch to record it.
type sentCall struct {
	call
	m   Message
	at  time.Time // the server's ack
	ok  bool
	err error
}

// markSent records a delivered message, in one transaction with those
// other workers deliver meanwhile. It reports false when this process no
// longer held the claim.
func (q *Queue) markSent(ctx context.Context, m Message) (bool, error) {
	c := &sentCall{call: newCall(), m: m, at: q.now()}
	if err := q.sends.do(ctx, c, c.done); err != nil {
		return false, fmt.Errorf("mark message sent %d: %w", m.ID, err)
	}
	return c.ok, c.err
}

func (c *sentCall) fail(err error) { c.ok, c.err = false, err }

// writeSent records a batch of delivered messages in one transaction.
func (q *Queue) writeSent(ctx context.Context, batch []*sentCall) error {
	done := make([]jobs.Done, len(batch))
	byID := make(map[int64]*sentCall, len(batch))
	for i, c := range batch {
		done[i] = jobs.Done{Job: q.job(c.m), At: c.at}
		byID[c.m.ID] = c
	}
	var observed []Message
	_, err := q.jobs.CompleteAll(ctx, done, func(tx *sql.Tx, held []jobs.Done) error {
		var sent []Message
		for _, d := range held {
			c := byID[d.Job.ID]
			c.ok = true
			sent = append(sent, c.m.sent(ms(c.at)))
		}
		steps, err := q.applyStored(ctx, tx, sent)
		if err != nil {
			return fmt.Errorf("mark messages sent: %w", err)
		}
		if err := q.settled(ctx, tx, append(sent, steps...)); err != nil {
			return fmt.Errorf("mark messages sent: %w", err)
		}
		observed = steps
		return nil
	})
	if err == nil {
		q.observeSteps(observed)
	}
	return err
}

// sent is m as recorded sent at at.
func (m Message) sent(at int64) Message {
	m.State, m.SentAt, m.UpdatedAt, m.LastError = Sent, fromMS(at), fromMS(at), ""
	m.LeaseOwner, m.LeaseUntil = "", time.Time{}
	return m
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

// settled passes messages that reached a new state to Options.Settled, in tx.
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
	err := q.jobs.Bury(ctx, q.job(m), reason, func(tx *sql.Tx) error {
		now := q.now()
		m.State, m.LastError, m.UpdatedAt, m.LeaseOwner, m.LeaseUntil = Dead, jobs.Truncate(reason), now, "", time.Time{}
		if err := q.settled(ctx, tx, []Message{m}); err != nil {
			return fmt.Errorf("mark message dead %d: %w", m.ID, err)
		}
		return nil
	})
	return held(err)
}

// reschedule makes a message pending again for another attempt at runAt.
func (q *Queue) reschedule(ctx context.Context, m Message, reason string, runAt time.Time) (bool, error) {
	return held(q.jobs.Retry(ctx, q.job(m), reason, runAt))
}

// handBack returns a claimed message unsent, refunding the attempt: it
// was not the message's fault (shutdown, connection gone).
func (q *Queue) handBack(ctx context.Context, m Message) (bool, error) {
	return held(q.jobs.Release(ctx, q.job(m)))
}

// postpone makes a claimed message pending again at runAt with its attempt
// given back: waiting for the reach-out lock is not a failed attempt.
func (q *Queue) postpone(ctx context.Context, m Message, reason string, runAt time.Time) (bool, error) {
	return held(q.jobs.Postpone(ctx, q.job(m), reason, runAt))
}

// held turns the engine's answer into whether the claim was still held.
func held(err error) (bool, error) {
	if errors.Is(err, jobs.ErrLeaseLost) {
		return false, nil
	}
	return err == nil, err
}
