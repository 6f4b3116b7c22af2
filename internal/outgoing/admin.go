package outgoing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

// Get returns the message with id, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id int64) (Message, error) {
	m, err := scanRow(q.db.QueryRowContext(ctx, "SELECT "+columns+
		" FROM blacksky_outbox WHERE session_id = $1 AND id = $2", q.opts.Session, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, fmt.Errorf("get message %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Message{}, fmt.Errorf("get message %d: %w", id, err)
	}
	one := []Message{m}
	if err := withLIDs(ctx, q.db, one); err != nil {
		return Message{}, fmt.Errorf("get message %d: %w", id, err)
	}
	return one[0], nil
}

// columns is how s is stored: the state column's value (” for any) and
// receipt_state's ('*' for any). Sent is a sent message no receipt has
// moved on yet.
func (s State) columns() (stored, step string) {
	switch {
	case s == "":
		return "", "*"
	case s == Sent:
		return string(Sent), ""
	case s.fromReceipts():
		return string(Sent), string(s)
	}
	return string(s), "*"
}

// Filter selects messages for List.
type Filter struct {
	State    State  // empty for every state
	To       string // a chat JID; empty for every chat
	BeforeID int64  // only ids below this, for paging; 0 for the newest
	Limit    int    // default 100, at most MaxListLimit
	// Preview, when above 0, cuts each text to that many characters, read
	// so from the database, and marks the cut ones TextTruncated: a page of
	// long texts costs a bounded amount of memory (Get has the whole text).
	Preview int
}

// MaxListLimit is the most messages one List call returns.
const MaxListLimit = 1000

// List returns the messages matching f, newest first.
func (q *Queue) List(ctx context.Context, f Filter) ([]Message, error) {
	if f.State != "" && !f.State.Valid() {
		return nil, fmt.Errorf("%w: unknown state %q", ErrInvalid, f.State)
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, MaxListLimit)
	var chat string
	if f.To != "" {
		var err error
		if chat, err = normalizeChat(f.To); err != nil {
			return nil, err
		}
	}
	before := f.BeforeID
	if before <= 0 {
		before = 1<<63 - 1
	}
	stored, step := f.State.columns()
	cols, args := columns, []any{q.opts.Session, stored, step, chat, before, f.Limit}
	if f.Preview > 0 {
		// One character more than shown tells a cut text from one that fits.
		cols, args = previewColumns(7), append(args, f.Preview+1)
	}
	rows, err := q.db.QueryContext(ctx, "SELECT "+cols+` FROM blacksky_outbox
		WHERE session_id = $1 AND ($2 = '' OR state = $2) AND ($3 = '*' OR receipt_state = $3)
		AND ($4 = '' OR chat = $4) AND id < $5
		ORDER BY id DESC LIMIT $6`, args...)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	msgs, err := scanAll(rows)
	if err == nil {
		err = withLIDs(ctx, q.db, msgs)
	}
	if f.Preview > 0 {
		for i := range msgs {
			msgs[i].cutText(f.Preview)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return msgs, nil
}

// FindSent returns the sent message with WhatsApp message ID waID, for
// answering a retry receipt; chat, when not empty, must match too. It
// reports false when no such message is kept.
func (q *Queue) FindSent(ctx context.Context, chat, waID string) (Message, bool, error) {
	m, err := scanRow(q.db.QueryRowContext(ctx, "SELECT "+columns+` FROM blacksky_outbox
		WHERE session_id = $1 AND wa_id = $2 AND ($3 = '' OR chat = $3) AND state = 'sent'`,
		q.opts.Session, waID, chat))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("find sent message %s: %w", waID, err)
	}
	return m, true, nil
}

// Retry puts a dead message back to pending with its attempts and TTL
// reset; it keeps its WhatsApp message ID. It returns ErrWrongState for a
// message that is not dead.
func (q *Queue) Retry(ctx context.Context, id int64) (Message, error) {
	ctx = sqlitedb.DurableCommit(ctx) // answers an operator
	err := q.jobs.RetryOne(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		if _, gerr := q.Get(ctx, id); gerr != nil {
			return Message{}, fmt.Errorf("retry message %d: %w", id, gerr)
		}
		return Message{}, fmt.Errorf("retry message %d: %w: only dead messages can be retried", id, ErrWrongState)
	}
	if err != nil {
		return Message{}, fmt.Errorf("retry message %d: %w", id, err)
	}
	q.wakeUp()
	return q.Get(ctx, id)
}

// RetryAllDead puts every dead message back to pending and returns how
// many. Retries are operator actions and do not check MaxPending.
func (q *Queue) RetryAllDead(ctx context.Context) (int64, error) {
	n, err := q.jobs.RetryDead(sqlitedb.DurableCommit(ctx)) // answers an operator
	if err != nil {
		return 0, fmt.Errorf("retry dead messages: %w", err)
	}
	if n > 0 {
		q.wakeUp()
	}
	return n, nil
}

// Purge deletes one dead or sent message; pending and sending ones are
// refused with ErrWrongState, since a send may be under way.
func (q *Queue) Purge(ctx context.Context, id int64) error {
	err := q.jobs.PurgeOne(ctx, id)
	if errors.Is(err, jobs.ErrNotFound) {
		if _, gerr := q.Get(ctx, id); gerr != nil {
			return fmt.Errorf("purge message %d: %w", id, gerr)
		}
		return fmt.Errorf("purge message %d: %w: only dead or sent messages can be purged", id, ErrWrongState)
	}
	if err != nil {
		return fmt.Errorf("purge message %d: %w", id, err)
	}
	return nil
}

// PurgeDead deletes every dead message and returns how many.
func (q *Queue) PurgeDead(ctx context.Context) (int64, error) {
	return q.jobs.PurgeDead(ctx)
}

// Prune deletes sent messages older than Retention, and the receipts
// received before then, and returns how many messages; the dispatcher calls
// it hourly.
func (q *Queue) Prune(ctx context.Context) (int64, error) {
	cut := q.now().Add(-q.opts.Retention)
	n, err := q.jobs.Prune(ctx, cut)
	if err != nil {
		return 0, err
	}
	if _, err := q.db.ExecContext(ctx, `DELETE FROM blacksky_receipts WHERE session_id = $1 AND received_at < $2`,
		q.opts.Session, ms(cut)); err != nil {
		return n, fmt.Errorf("prune receipts: %w", err)
	}
	return n, nil
}

// The counts of Depths, each on a partial index.
const (
	openDepthsSQL = `SELECT
		(SELECT count(*) FROM blacksky_outbox WHERE session_id = $1 AND state = 'pending'),
		(SELECT count(*) FROM blacksky_outbox WHERE session_id = $1 AND state = 'sending'),
		(SELECT count(*) FROM blacksky_outbox WHERE session_id = $1 AND state = 'dead')`
	sentDepthsSQL = `SELECT receipt_state, count(*) FROM blacksky_outbox
		WHERE session_id = $1 AND state = 'sent' GROUP BY receipt_state`
)

// Depths returns how many messages are in each state; every state is
// present. Each count reads a partial index: the open and dead states theirs, the sent
// ones (TestDepthsUseIndexes) by the step their receipts
// reached on blacksky_outbox_receipt_state.
func (q *Queue) Depths(ctx context.Context) (map[State]int, error) {
	out := make(map[State]int, len(States()))
	for _, s := range States() {
		out[s] = 0
	}
	var pending, sending, dead int
	err := q.db.QueryRowContext(ctx, openDepthsSQL, q.opts.Session).Scan(&pending, &sending, &dead)
	if err != nil {
		return nil, fmt.Errorf("count messages by state: %w", err)
	}
	out[Pending], out[Sending], out[Dead] = pending, sending, dead
	rows, err := q.db.QueryContext(ctx, sentDepthsSQL, q.opts.Session)
	if err != nil {
		return nil, fmt.Errorf("count sent messages by receipt: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var step string
		var n int
		if err := rows.Scan(&step, &n); err != nil {
			return nil, fmt.Errorf("count sent messages by receipt: %w", err)
		}
		if step == "" {
			step = string(Sent)
		}
		out[State(step)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count sent messages by receipt: %w", err)
	}
	return out, nil
}

// OldestPendingAge is how long the oldest message still waiting to be sent
// (pending or sending) has existed; 0 when none waits.
func (q *Queue) OldestPendingAge(ctx context.Context) (time.Duration, error) {
	var created int64
	err := q.db.QueryRowContext(ctx, `SELECT created_at FROM blacksky_outbox
		WHERE session_id = $1 AND state IN ('pending', 'sending') ORDER BY id LIMIT 1`, q.opts.Session).Scan(&created)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find oldest pending message: %w", err)
	}
	return max(q.now().Sub(fromMS(created)), 0), nil
}

// ReclaimAll makes every message this session's processes had claimed
// pending again at once, keeping its attempt count and WhatsApp message ID.
// Call it only while holding the account's lease: then no other process can
// be sending for this session, so those claims belong to a process that died
// and need not wait for their lease to expire. It returns how many.
func (q *Queue) ReclaimAll(ctx context.Context) (int64, error) {
	n, err := q.jobs.ReclaimAll(ctx)
	if err != nil {
		return 0, fmt.Errorf("reclaim claimed messages: %w", err)
	}
	if n > 0 {
		q.wakeUp()
	}
	return n, nil
}

// cutText keeps the first n characters of the text and says it was cut.
func (m *Message) cutText(n int) {
	for i := range m.Text {
		if n == 0 {
			m.Text, m.TextTruncated = m.Text[:i], true
			return
		}
		n--
	}
}
