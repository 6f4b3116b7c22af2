package outgoing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// enqueueCall is one caller's request waiting for a batch.
type enqueueCall struct {
	call
	chat string
	req  Request
	msg  Message
	// created is false for an idempotent repeat.
	created bool
	err     error
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
	c := &enqueueCall{call: newCall(), chat: chat, req: req}
	if err := q.enqueues.do(ctx, c, c.done); err != nil {
		return Message{}, false, fmt.Errorf("enqueue: %w", err)
	}
	return c.msg, c.created, c.err
}

func (c *enqueueCall) fail(err error) { c.msg, c.created, c.err = Message{}, false, err }

// writeBatch inserts the batch's messages, each refused alone when the
// backlog is full; an error fails the whole batch.
func (q *Queue) writeBatch(ctx context.Context, batch []*enqueueCall) error {
	// The callers are answered 202 once this returns: on SQLite the commit
	// must survive power loss, not only the process (issue 13, case 9).
	ctx = sqlitedb.DurableCommit(ctx)
	return q.inTx(ctx, "enqueue", func(tx *sql.Tx) error {
		if q.engine == store.Postgres {
			// One batch at a time per account, across processes, keeps the
			// backlog bound exact and ids in commit order, which FIFO per chat
			// relies on. SQLite gets both from its single writer.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", q.lockKey()); err != nil {
				return fmt.Errorf("enqueue: lock: %w", err)
			}
		}
		return q.insertBatch(ctx, tx, batch, ms(q.now()))
	})
}

// insertBatch inserts the batch within tx, refusing each message that the
// backlog bound has no room for.
func (q *Queue) insertBatch(ctx context.Context, tx *sql.Tx, batch []*enqueueCall, now int64) error {
	if top, ok := q.roomUpTo(len(batch)); ok && q.engine == store.Postgres {
		// Most batches: one statement, the INSERT itself checking the
		// highest id instead of a read of it first.
		if done, err := q.insertAll(ctx, tx, batch, now, top); err != nil || done {
			return err
		}
	}
	open, err := q.backlog(ctx, tx, len(batch))
	if err != nil {
		return err
	}
	if q.engine == store.Postgres && open+len(batch) <= q.opts.MaxPending {
		_, err = q.insertAll(ctx, tx, batch, now, noGuard)
		return err
	}
	return q.insertEach(ctx, tx, batch, now, open)
}

// recountInterval is how long a backlog count may stand in for a new one.
const recountInterval = time.Second

// backlogCount is an exact count of the open messages and the highest id
// in the table when it was taken.
type backlogCount struct {
	open  int
	maxID int64
	at    time.Time // zero: never counted
}

// roomUpTo returns the highest id the table may hold for n more messages
// to fit the backlog bound, judged by the last exact count; false when
// that count is too old to go by or leaves no room. Only the holder of the
// batch turn calls it.
func (q *Queue) roomUpTo(n int) (int64, bool) {
	last := q.lastCount
	if last.at.IsZero() || time.Since(last.at) >= recountInterval {
		return 0, false
	}
	// Every message added since the count has an id above last.maxID.
	room := q.opts.MaxPending - n - last.open
	return last.maxID + int64(room), room >= 0
}

// backlog returns how many messages are open (pending or sending), or
// more, but never fewer unless an operator retried dead messages in the
// last recountInterval (retries do not check the bound). Counting scans
// up to MaxPending rows, so while the last count plus every id assigned
// since leaves room for n more it is not repeated. Only the holder of the
// batch turn calls it.
func (q *Queue) backlog(ctx context.Context, tx *sql.Tx, n int) (int, error) {
	var maxID sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT max(id) FROM blacksky_outbox").Scan(&maxID); err != nil {
		return 0, fmt.Errorf("enqueue: read highest id: %w", err)
	}
	if top, ok := q.roomUpTo(n); ok && maxID.Int64 <= top {
		return q.lastCount.open + int(maxID.Int64-q.lastCount.maxID), nil
	}
	var open int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM blacksky_outbox
		WHERE session_id = $1 AND state IN ('pending', 'sending') LIMIT $2) AS o`,
		q.opts.Session, q.opts.MaxPending).Scan(&open); err != nil {
		return 0, fmt.Errorf("enqueue: count backlog: %w", err)
	}
	q.lastCount = backlogCount{open: open, maxID: maxID.Int64, at: time.Now()}
	return open, nil
}

// insertSQL adds a pending message unless its idempotency key is taken,
// in which case it returns no row.
const insertSQL = `INSERT INTO blacksky_outbox
	(session_id, chat, text, wa_id, idempotency_key, state, attempts, last_error, created_at, queued_at, run_at, updated_at)
	VALUES ($1, $2, $3, $4, $5, 'pending', 0, '', $6, $6, $6, $6)
	ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING ` + columns

// insertEach inserts the batch one statement per message, checking the
// backlog bound before each; open is the backlog before the batch.
func (q *Queue) insertEach(ctx context.Context, tx *sql.Tx, batch []*enqueueCall, now int64, open int) error {
	for _, c := range batch {
		if err := q.insertOne(ctx, tx, c, now, &open); err != nil {
			return err
		}
	}
	return nil
}

// insertOne sets c's outcome within the batch's transaction; open counts
// the backlog, including the batch's rows so far.
func (q *Queue) insertOne(ctx context.Context, tx *sql.Tx, c *enqueueCall, now int64, open *int) error {
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
		c.err = fmt.Errorf("%w: %d messages are waiting (OUTGOING_MAX_PENDING)", ErrBacklogFull, q.opts.MaxPending)
		return nil
	}
	m, err := scanRow(tx.QueryRowContext(ctx, insertSQL, q.opts.Session, c.chat, c.req.Text,
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

// insertAllSQL inserts rows given as parallel arrays in array order, so
// ids follow the batch's order; rows whose idempotency key is taken are
// skipped.
const insertAllSQL = `INSERT INTO blacksky_outbox
	(session_id, chat, text, wa_id, idempotency_key, state, attempts, last_error, created_at, queued_at, run_at, updated_at)
	SELECT $1, r.chat, r.text, r.wa_id, r.idempotency_key, 'pending', 0, '', $2, $2, $2, $2
	FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) WITH ORDINALITY
		AS r(chat, text, wa_id, idempotency_key, n)
	WHERE (SELECT coalesce(max(id), 0) FROM blacksky_outbox) <= $7
	ORDER BY r.n
	ON CONFLICT (session_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
	RETURNING ` + columns

// noGuard is the highest id that lets every insertAll batch through, for a
// batch already known to fit the backlog bound.
const noGuard = math.MaxInt64

// insertAll inserts a batch that fits the backlog bound in one statement,
// one round trip to PostgreSQL for the lot, if the table's highest id is
// at most top: the batch then fits the bound. It reports false, with no
// outcome set, when it inserted nothing: top was passed, or every message
// repeated an idempotency key.
func (q *Queue) insertAll(ctx context.Context, tx *sql.Tx, batch []*enqueueCall, now, top int64) (bool, error) {
	chats, texts, waIDs := make([]string, len(batch)), make([]string, len(batch)), make([]string, len(batch))
	keys := make([]*string, len(batch))
	byWAID := make(map[string]*enqueueCall, len(batch))
	for i, c := range batch {
		chats[i], texts[i], waIDs[i] = c.chat, c.req.Text, string(whatsmeow.GenerateMessageID())
		if c.req.IdempotencyKey != "" {
			keys[i] = &c.req.IdempotencyKey
		}
		byWAID[waIDs[i]] = c
	}
	rows, err := tx.QueryContext(ctx, insertAllSQL, q.opts.Session, now, chats, texts, waIDs, keys, top)
	if err != nil {
		return false, fmt.Errorf("enqueue: insert: %w", err)
	}
	msgs, err := scanAll(rows)
	if err != nil {
		return false, fmt.Errorf("enqueue: insert: %w", err)
	}
	if len(msgs) == 0 && top != noGuard {
		return false, nil
	}
	for _, m := range msgs {
		if c := byWAID[m.WAID]; c != nil {
			c.msg, c.created = m, true
		}
	}
	for _, c := range batch {
		if c.created {
			continue
		}
		// Its key was taken, by an earlier message or one in this batch.
		m, ok, err := q.byKey(ctx, tx, c.req.IdempotencyKey)
		if err == nil && !ok {
			err = fmt.Errorf("enqueue: message for %s was not stored and has no idempotency key to find it by", c.chat)
		}
		if err != nil {
			return false, err
		}
		c.msg = m
	}
	return true, nil
}
