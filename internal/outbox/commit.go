package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// Enqueues are group-committed: callers that arrive while a transaction
// is being written wait for the next one and share it, so a burst pays for
// one lock, one backlog count and one commit (one WAL flush) per batch
// instead of per message, while every caller still returns only once its
// own row is durable.

const (
	// maxBatch bounds the enqueues one transaction carries.
	maxBatch = 256
	// commitTimeout bounds one batch's transaction; it runs on its own
	// context, since one caller giving up must not fail the others.
	commitTimeout = 30 * time.Second
)

// enqueueCall is one caller's request waiting for a batch.
type enqueueCall struct {
	chat string
	req  Request
	done chan struct{} // closed once msg, created and err are set
	msg  Message
	// created is false for an idempotent repeat.
	created bool
	err     error
}

// batcher gathers concurrent enqueues into shared transactions.
type batcher struct {
	turn    chan struct{} // a one-slot semaphore: whoever holds it commits
	mu      sync.Mutex
	waiting []*enqueueCall
}

func newBatcher() *batcher {
	return &batcher{turn: make(chan struct{}, 1)}
}

func (b *batcher) add(c *enqueueCall) {
	b.mu.Lock()
	b.waiting = append(b.waiting, c)
	b.mu.Unlock()
}

// take removes up to maxBatch waiting calls, oldest first.
func (b *batcher) take() []*enqueueCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(len(b.waiting), maxBatch)
	batch := b.waiting[:n:n]
	b.waiting = b.waiting[n:]
	if len(b.waiting) == 0 {
		b.waiting = nil
	}
	return batch
}

// insert stores req (for chat) in the next batch and returns its outcome.
// If ctx ends first, the message may still be stored by the batch it was
// already in; an idempotency key makes the retry safe.
func (q *Queue) insert(ctx context.Context, chat string, req Request) (Message, bool, error) {
	if req.IdempotencyKey != "" {
		// Repeats are answered without waiting for a batch.
		if m, ok, err := q.byKey(ctx, q.db, req.IdempotencyKey); err != nil || ok {
			return m, false, err
		}
	}
	c := &enqueueCall{chat: chat, req: req, done: make(chan struct{})}
	q.batch.add(c)
	for {
		select {
		case <-c.done:
			return c.msg, c.created, c.err
		case <-ctx.Done():
			return Message{}, false, fmt.Errorf("enqueue: %w", ctx.Err())
		case q.batch.turn <- struct{}{}:
			// Our call may have gone out with the batch that just ended.
			if batch := q.batch.take(); len(batch) > 0 {
				q.commitBatch(context.WithoutCancel(ctx), batch)
			}
			<-q.batch.turn
		}
	}
}

// commitBatch writes batch in one transaction and tells every caller its outcome.
func (q *Queue) commitBatch(ctx context.Context, batch []*enqueueCall) {
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	err := q.writeBatch(ctx, batch)
	for _, c := range batch {
		if err != nil {
			c.msg, c.created, c.err = Message{}, false, err
		}
		close(c.done)
	}
}

// writeBatch inserts the batch's messages, each refused alone when the
// backlog is full; an error fails the whole batch.
func (q *Queue) writeBatch(ctx context.Context, batch []*enqueueCall) error {
	defer q.writing()()
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enqueue: begin: %w", err)
	}
	defer tx.Rollback()
	if q.kind == store.Postgres {
		// One batch at a time per account, across processes, keeps the
		// backlog bound exact and ids in commit order, which FIFO per chat
		// relies on. SQLite gets both from its single writer.
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", q.lockKey()); err != nil {
			return fmt.Errorf("enqueue: lock: %w", err)
		}
	}
	var open int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM blacksky_outbox
		WHERE session_id = $1 AND state IN ('pending', 'sending') LIMIT $2) AS o`,
		q.opts.Session, q.opts.MaxPending).Scan(&open); err != nil {
		return fmt.Errorf("enqueue: count backlog: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, insertSQL)
	if err != nil {
		return fmt.Errorf("enqueue: prepare: %w", err)
	}
	defer stmt.Close()
	now := ms(q.now())
	for _, c := range batch {
		if err := q.insertOne(ctx, tx, stmt, c, now, &open); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enqueue: commit: %w", err)
	}
	return nil
}

// insertSQL adds a pending message unless its idempotency key is taken,
// in which case it returns no row.
const insertSQL = `INSERT INTO blacksky_outbox
	(session_id, chat, text, wa_id, idempotency_key, state, attempts, last_error, created_at, queued_at, run_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, 'pending', 0, '', $6, $6, $6, $6)
	ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING ` + columns

// insertOne sets c's outcome within the batch's transaction; open counts
// the backlog, including the batch's rows so far.
func (q *Queue) insertOne(ctx context.Context, tx *sql.Tx, stmt *sql.Stmt, c *enqueueCall, now int64, open *int) error {
	key := c.req.IdempotencyKey
	if *open >= q.opts.MaxPending {
		if key != "" {
			// A repeat of a stored message is answered even when full.
			m, ok, err := q.byKey(ctx, tx, key)
			if err != nil || ok {
				c.msg, c.err = m, err
				return err
			}
		}
		c.err = fmt.Errorf("%w: %d messages are waiting (NOTIFY_MAX_PENDING)", ErrBacklogFull, q.opts.MaxPending)
		return nil
	}
	m, err := scanRow(stmt.QueryRowContext(ctx, q.opts.Session, c.chat, c.req.Text,
		string(whatsmeow.GenerateMessageID()), nullString(key), now))
	if errors.Is(err, sql.ErrNoRows) && key != "" {
		// Enqueued by another caller since our first look, maybe in this batch.
		m, ok, err := q.byKey(ctx, tx, key)
		if err == nil && !ok {
			err = fmt.Errorf("enqueue: idempotency key %q conflicts but names no message", key)
		}
		c.msg = m
		return err
	}
	if err != nil {
		return fmt.Errorf("enqueue: insert: %w", err)
	}
	c.msg, c.created = m, true
	*open++
	return nil
}
