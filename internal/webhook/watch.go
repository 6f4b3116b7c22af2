package webhook

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// watchLag keeps the outbox watcher this far behind the clock, so a state
// change whose transaction committed a moment after its timestamp was
// taken is not skipped.
const watchLag = 2 * time.Second

// watchBatch is the most state changes one scan reports per state.
const watchBatch = 500

// OutgoingStatus is the payload of message.sent and message.dead events.
type OutgoingStatus struct {
	OutboxID       int64     `json:"outbox_id"`
	To             string    `json:"to"`
	WAID           string    `json:"wa_id"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	Error          string    `json:"error,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Time           time.Time `json:"time"`
}

type watchSpec struct {
	cursor, state, column, kind string
}

var watchSpecs = [...]watchSpec{
	{"outbox.sent", "sent", "sent_at", KindMessageSent},
	{"outbox.dead", "dead", "updated_at", KindMessageDead},
}

// WatchOutbox reports outgoing messages that became sent or dead as
// message.sent and message.dead events, checking the outbox table every
// interval (default 1s) until ctx ends; it then returns nil. Changes are
// reported a couple of seconds after they happen, each once (its event ID
// names the message, the state and the time). On its first run for a
// session it starts from now. Run it beside Run, in one process.
func (c *Client) WatchOutbox(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := c.ScanOutbox(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("webhook: watch outgoing messages", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ScanOutbox turns the outbox's state changes since the last scan into
// events once; WatchOutbox calls it periodically.
func (c *Client) ScanOutbox(ctx context.Context) error {
	for _, s := range watchSpecs {
		for {
			n, err := c.scanOne(ctx, s)
			if err != nil {
				return err
			}
			if n < watchBatch {
				break
			}
		}
	}
	return nil
}

func (c *Client) scanOne(ctx context.Context, s watchSpec) (int, error) {
	now := c.opts.Now()
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("scan outbox: begin: %w", err)
	}
	defer tx.Rollback()
	var ts, ref int64
	err = tx.QueryRowContext(ctx, `SELECT ts, ref FROM blacksky_webhook_cursor WHERE session_id = $1 AND name = $2`,
		c.opts.Session, s.cursor).Scan(&ts, &ref)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO blacksky_webhook_cursor (session_id, name, ts, ref)
			VALUES ($1, $2, $3, 0) ON CONFLICT (session_id, name) DO NOTHING`, c.opts.Session, s.cursor, ms(now.Add(-watchLag))); err != nil {
			return 0, fmt.Errorf("scan outbox: start cursor: %w", err)
		}
		return 0, commit(tx)
	}
	if err != nil {
		return 0, fmt.Errorf("scan outbox: read cursor: %w", err)
	}
	// s.column is one of two constants, never input.
	rows, err := tx.QueryContext(ctx, `SELECT id, chat, wa_id, coalesce(idempotency_key, ''), attempts, last_error, `+s.column+`
		FROM blacksky_outbox WHERE session_id = $1 AND state = $2
		AND (`+s.column+` > $3 OR (`+s.column+` = $3 AND id > $4)) AND `+s.column+` <= $5
		ORDER BY `+s.column+`, id LIMIT $6`,
		c.opts.Session, s.state, ts, ref, ms(now.Add(-watchLag)), watchBatch)
	if err != nil {
		return 0, fmt.Errorf("scan outbox: %w", err)
	}
	var found []OutgoingStatus
	for rows.Next() {
		var o OutgoingStatus
		var at int64
		if err := rows.Scan(&o.OutboxID, &o.To, &o.WAID, &o.IdempotencyKey, &o.Attempts, &o.Error, &at); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan outbox: %w", err)
		}
		o.State, o.Time = s.state, fromMS(at)
		found = append(found, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("scan outbox: %w", err)
	}
	if len(found) == 0 {
		return 0, nil
	}
	for _, o := range found {
		id := "out_" + strconv.FormatInt(o.OutboxID, 10) + "_" + o.State + "_" + strconv.FormatInt(ms(o.Time), 10)
		if err := c.EnqueueID(ctx, tx, id, s.kind, o); err != nil {
			return 0, fmt.Errorf("scan outbox: %w", err)
		}
	}
	last := found[len(found)-1]
	if _, err := tx.ExecContext(ctx, `UPDATE blacksky_webhook_cursor SET ts = $3, ref = $4
		WHERE session_id = $1 AND name = $2`, c.opts.Session, s.cursor, ms(last.Time), last.OutboxID); err != nil {
		return 0, fmt.Errorf("scan outbox: move cursor: %w", err)
	}
	if err := commit(tx); err != nil {
		return 0, err
	}
	c.Wake()
	return len(found), nil
}

func commit(tx *sql.Tx) error {
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("scan outbox: commit: %w", err)
	}
	return nil
}
