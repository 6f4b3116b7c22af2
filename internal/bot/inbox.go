package bot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
)

const inboxColumns = `id, chat, msg_id, sender, sender_alt, push_name, is_group, from_me, kind, text,
	sent_at, received_at, state, attempts`

func scanMessage(row interface{ Scan(...any) error }) (Message, error) {
	var m Message
	var group, fromMe int
	var sent, received int64
	err := row.Scan(&m.ID, &m.Chat, &m.MsgID, &m.Sender, &m.SenderAlt, &m.PushName, &group, &fromMe,
		&m.Kind, &m.Text, &sent, &received, &m.State, &m.Attempts)
	m.IsGroup, m.FromMe = group != 0, fromMe != 0
	m.SentAt, m.ReceivedAt = fromMS(sent), fromMS(received)
	return m, err
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// Store records m as pending unless the inbox already holds the message
// (a redelivery); it reports whether it was new.
func (b *Bot) Store(ctx context.Context, m Message) (bool, error) {
	// WhatsApp is acked once this returns and deletes its copy: on SQLite
	// the row must survive power loss, not only the process.
	ctx = sqlitedb.DurableCommit(ctx)
	res, err := b.opts.DB.ExecContext(ctx, `INSERT INTO blacksky_inbox
		(session_id, chat, msg_id, sender, sender_alt, push_name, is_group, from_me, kind, text,
		 sent_at, received_at, state, attempts, last_error, run_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', 0, '', $12)
		ON CONFLICT (session_id, chat, msg_id) DO NOTHING`,
		b.opts.Session, m.Chat, m.MsgID, m.Sender, m.SenderAlt, m.PushName, boolInt(m.IsGroup), boolInt(m.FromMe),
		m.Kind, m.Text, ms(m.SentAt), ms(m.ReceivedAt))
	if err != nil {
		return false, fmt.Errorf("store incoming message: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store incoming message: %w", err)
	}
	if n > 0 {
		b.signal()
	}
	return n > 0, nil
}

// Get returns the stored message with WhatsApp ID msgID in chat.
func (b *Bot) Get(ctx context.Context, chat, msgID string) (Message, bool, error) {
	m, err := scanMessage(b.opts.DB.QueryRowContext(ctx, `SELECT `+inboxColumns+` FROM blacksky_inbox
		WHERE session_id = $1 AND chat = $2 AND msg_id = $3`, b.opts.Session, chat, msgID))
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("get incoming message: %w", err)
	}
	return m, true, nil
}

// InboxDepths returns how many incoming messages are in each state; every
// state is present.
func (b *Bot) InboxDepths(ctx context.Context) (map[MessageState]int, error) {
	out := map[MessageState]int{Pending: 0, Handled: 0, Failed: 0}
	rows, err := b.opts.DB.QueryContext(ctx, `SELECT state, count(*) FROM blacksky_inbox
		WHERE session_id = $1 GROUP BY state`, b.opts.Session)
	if err != nil {
		return nil, fmt.Errorf("count incoming messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s MessageState
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("count incoming messages: %w", err)
		}
		out[s] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count incoming messages: %w", err)
	}
	return out, nil
}

// head is a chat's oldest pending message.
type head struct {
	chat  string
	id    int64
	runAt time.Time
}

// heads returns the oldest pending message of up to limit chats, oldest first.
func (b *Bot) heads(ctx context.Context, limit int) ([]head, error) {
	rows, err := b.opts.DB.QueryContext(ctx, `SELECT i.chat, i.id, i.run_at FROM blacksky_inbox i
		WHERE i.session_id = $1 AND i.state = 'pending' AND i.id = (SELECT min(j.id) FROM blacksky_inbox j
			WHERE j.session_id = i.session_id AND j.chat = i.chat AND j.state = 'pending')
		ORDER BY i.id LIMIT $2`, b.opts.Session, limit)
	if err != nil {
		return nil, fmt.Errorf("find pending chats: %w", err)
	}
	defer rows.Close()
	var out []head
	for rows.Next() {
		var h head
		var runAt int64
		if err := rows.Scan(&h.chat, &h.id, &runAt); err != nil {
			return nil, fmt.Errorf("find pending chats: %w", err)
		}
		h.runAt = fromMS(runAt)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find pending chats: %w", err)
	}
	return out, nil
}

// next returns chat's oldest pending message.
func (b *Bot) next(ctx context.Context, chat string) (Message, time.Time, bool, error) {
	var runAt int64
	var m Message
	row := b.opts.DB.QueryRowContext(ctx, `SELECT `+inboxColumns+`, run_at FROM blacksky_inbox
		WHERE session_id = $1 AND chat = $2 AND state = 'pending' ORDER BY id LIMIT 1`, b.opts.Session, chat)
	var group, fromMe int
	var sent, received int64
	err := row.Scan(&m.ID, &m.Chat, &m.MsgID, &m.Sender, &m.SenderAlt, &m.PushName, &group, &fromMe,
		&m.Kind, &m.Text, &sent, &received, &m.State, &m.Attempts, &runAt)
	if errors.Is(err, sql.ErrNoRows) {
		return Message{}, time.Time{}, false, nil
	}
	if err != nil {
		return Message{}, time.Time{}, false, fmt.Errorf("load pending message: %w", err)
	}
	m.IsGroup, m.FromMe = group != 0, fromMe != 0
	m.SentAt, m.ReceivedAt = fromMS(sent), fromMS(received)
	return m, fromMS(runAt), true, nil
}

// markHandled ends m's handling in tx.
func markHandled(ctx context.Context, tx *sql.Tx, id int64, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE blacksky_inbox SET state = 'handled', handled_at = $2, last_error = ''
		WHERE id = $1 AND state = 'pending'`, id, ms(now))
	if err != nil {
		return fmt.Errorf("mark message handled: %w", err)
	}
	return nil
}

// reschedule records a failed handling: retried after a backoff, or failed
// for good after MaxAttempts.
func (b *Bot) reschedule(ctx context.Context, m Message, cause error) error {
	attempts := m.Attempts + 1
	now := b.opts.Now()
	msg := cause.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	msg = clean(msg)
	if attempts >= b.opts.MaxAttempts {
		_, err := b.opts.DB.ExecContext(ctx, `UPDATE blacksky_inbox SET state = 'failed', attempts = $2,
			last_error = $3 WHERE id = $1`, m.ID, attempts, msg)
		if err != nil {
			return fmt.Errorf("mark message failed: %w", err)
		}
		b.log.Error("bot: giving up on an incoming message", "chat", m.Chat, "id", m.MsgID, "attempts", attempts, "err", cause)
		return nil
	}
	next := now.Add(b.opts.Backoff.Delay(attempts - 1))
	_, err := b.opts.DB.ExecContext(ctx, `UPDATE blacksky_inbox SET attempts = $2, last_error = $3, run_at = $4
		WHERE id = $1`, m.ID, attempts, msg, ms(next))
	if err != nil {
		return fmt.Errorf("reschedule message: %w", err)
	}
	b.log.Warn("bot: handling an incoming message failed, will retry", "chat", m.Chat, "id", m.MsgID, "attempt", attempts, "next", next, "err", cause)
	return nil
}

// RetryFailed makes every failed incoming message pending again and
// returns how many.
func (b *Bot) RetryFailed(ctx context.Context) (int64, error) {
	res, err := b.opts.DB.ExecContext(ctx, `UPDATE blacksky_inbox SET state = 'pending', attempts = 0, run_at = $2
		WHERE session_id = $1 AND state = 'failed'`, b.opts.Session, ms(b.opts.Now()))
	if err != nil {
		return 0, fmt.Errorf("retry failed messages: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		b.signal()
	}
	return n, nil
}

// Prune deletes handled messages older than Retention and returns how many.
func (b *Bot) Prune(ctx context.Context) (int64, error) {
	res, err := b.opts.DB.ExecContext(ctx, `DELETE FROM blacksky_inbox
		WHERE session_id = $1 AND state = 'handled' AND handled_at < $2`,
		b.opts.Session, ms(b.opts.Now().Add(-b.opts.Retention)))
	if err != nil {
		return 0, fmt.Errorf("prune handled messages: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
