package bot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/blacksky-bot/blacksky/internal/jobs"
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
		 sent_at, received_at, state, attempts, last_error, run_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', 0, '', $12, $12)
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
		b.wakeUp()
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

// load returns the stored message with row id id.
func (b *Bot) load(ctx context.Context, id int64) (Message, error) {
	m, err := scanMessage(b.opts.DB.QueryRowContext(ctx, `SELECT `+inboxColumns+` FROM blacksky_inbox WHERE id = $1`, id))
	if err != nil {
		return Message{}, fmt.Errorf("load incoming message: %w", err)
	}
	return m, nil
}

// InboxDepths returns how many incoming messages are in each state (one
// being handled is pending); every state is present.
func (b *Bot) InboxDepths(ctx context.Context) (map[MessageState]int, error) {
	d, err := b.jobs.Depths(ctx)
	if err != nil {
		return nil, fmt.Errorf("count incoming messages: %w", err)
	}
	return map[MessageState]int{Pending: d[string(Pending)], Handled: d[string(Handled)], Dead: d[string(Dead)]}, nil
}

// Jobs is the inbox as the job engine sees it (kind "incoming"), for its
// metrics and administration.
func (b *Bot) Jobs() *jobs.Queue { return b.jobs }

// policy is how handlings that failed are retried.
func (b *Bot) policy() jobs.Policy {
	return jobs.Policy{MaxAttempts: b.opts.MaxAttempts, Backoff: b.opts.Backoff}
}

// fail records a failed handling of m (claimed as j): retried after a
// backoff, or failed for good after MaxAttempts.
func (b *Bot) fail(ctx context.Context, j jobs.Job, m Message, cause error) error {
	dead, err := b.jobs.Fail(ctx, j, clean(jobs.Truncate(cause.Error())), b.policy())
	if err != nil {
		return fmt.Errorf("record failed handling: %w", err)
	}
	if dead {
		b.log.Error("bot: giving up on an incoming message", "chat", m.Chat, "id", m.MsgID, "attempts", j.Attempts, "err", cause)
		return nil
	}
	b.log.Warn("bot: handling an incoming message failed, will retry", "chat", m.Chat, "id", m.MsgID, "attempt", j.Attempts, "err", cause)
	return nil
}

// RetryDead makes every dead incoming message pending again and
// returns how many.
func (b *Bot) RetryDead(ctx context.Context) (int64, error) {
	n, err := b.jobs.RetryDead(ctx)
	if err != nil {
		return 0, fmt.Errorf("retry dead incoming messages: %w", err)
	}
	if n > 0 {
		b.wakeUp()
	}
	return n, nil
}

// Prune deletes handled messages older than Retention and returns how many.
func (b *Bot) Prune(ctx context.Context) (int64, error) {
	n, err := b.jobs.Prune(ctx, b.opts.Now().Add(-b.opts.Retention))
	if err != nil {
		return 0, fmt.Errorf("prune handled messages: %w", err)
	}
	return n, nil
}
