package outgoing

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
	"github.com/blacksky-bot/blacksky/internal/store"
)

const (
	pnServer  = types.DefaultUserServer
	lidServer = types.HiddenUserServer
)

// What happens to a message after WhatsApp's server took it is told by
// receipts: a device of the recipient has it (delivered), the recipient
// opened it (read, only when they share read receipts) or played it (a
// voice or video message; sent even with read receipts off). They come in
// any order, late, twice, for messages a previous process sent, and even
// before this process has recorded the message as sent (the server's ack
// and the recipient's receipt race). So every receipt for one of our
// messages is stored as it arrives, before WhatsApp gets its ack
// (blacksky_receipts, keyed by message, step and device, so a duplicate is
// stored once), and applied from there: at once to a message recorded as
// sent, and to one not yet sent when its sent record commits. A step is
// reached once: its time is set only while empty, so nothing is applied
// twice, and a read without a delivery before it makes the message
// delivered as well (a device that read it has it).

// Receipt is what WhatsApp said of some of our messages.
type Receipt struct {
	// IDs are the WhatsApp message IDs it is for.
	IDs []string
	// Chat is the chat as WhatsApp named it: the recipient's phone-number
	// or LID JID, without a device.
	Chat string
	// Sender is the device that sent it (in a group, the participant's).
	Sender string
	// State is Delivered, Read or Played.
	State State
	// At is WhatsApp's time of it.
	At time.Time
}

// RecordReceipt stores r for those of its messages that are ours and were
// sent to r.Chat, and moves the sent ones on, with Options.Settled in the
// same transaction. A message that is not ours (sent by the phone, say) is
// skipped. The commit is durable (on SQLite, synchronous=FULL): the caller
// acknowledges the receipt to WhatsApp once this returns nil, and WhatsApp
// then forgets it; on an error it must not, and WhatsApp sends it again.
func (q *Queue) RecordReceipt(ctx context.Context, r Receipt) error {
	if r.State != Delivered && r.State != Read && r.State != Played {
		return fmt.Errorf("%w: a receipt says delivered, read or played, not %q", ErrInvalid, r.State)
	}
	if len(r.IDs) == 0 {
		return nil
	}
	ctx = sqlitedb.DurableCommit(ctx)
	var steps []Message
	err := q.inTx(ctx, "record receipt", func(tx *sql.Tx) error {
		msgs, err := q.lockByWAID(ctx, tx, r.IDs)
		if err != nil {
			return err
		}
		addrs, err := addressesOf(ctx, tx, r.Chat)
		if err != nil {
			return err
		}
		now := q.now()
		for _, m := range msgs {
			if !fromChat(m.To, r.Chat, addrs) {
				q.log.Warn("receipt from a chat the message was not sent to; ignored",
					"id", m.ID, "wa_id", m.WAID, "to", m.To, "receipt_chat", r.Chat)
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO blacksky_receipts
				(session_id, wa_id, state, sender, chat, at, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT DO NOTHING`, q.opts.Session, m.WAID, string(r.State), r.Sender, r.Chat, ms(r.At), ms(now)); err != nil {
				return fmt.Errorf("record receipt for message %d: %w", m.ID, err)
			}
			if m.State != Sent && !m.State.fromReceipts() {
				continue // applied when its sent record commits
			}
			got, err := q.advance(ctx, tx, m, []stamp{{r.State, r.At}})
			if err != nil {
				return err
			}
			steps = append(steps, got...)
		}
		return q.settled(ctx, tx, steps)
	})
	if err != nil {
		return err
	}
	q.observeSteps(steps)
	return nil
}

// stamp is one step a receipt reports and its time.
type stamp struct {
	state State
	at    time.Time
}

// lockByWAID reads our messages with those WhatsApp IDs, in id order, and
// on PostgreSQL locks them until tx ends: a sent record being written for
// one of them waits, and then finds this receipt stored (applyStored),
// or this waits for it and finds the message sent.
func (q *Queue) lockByWAID(ctx context.Context, tx *sql.Tx, waIDs []string) ([]Message, error) {
	args, marks := inList([]any{q.opts.Session}, waIDs)
	query := "SELECT " + columns + " FROM blacksky_outbox WHERE session_id = $1 AND wa_id IN (" + marks + ") ORDER BY id"
	if q.engine == store.Postgres {
		query += " FOR UPDATE"
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find the messages of a receipt: %w", err)
	}
	msgs, err := scanAll(rows)
	if err != nil {
		return nil, fmt.Errorf("find the messages of a receipt: %w", err)
	}
	return msgs, nil
}

// applyStored applies the receipts that came before their messages'
// sent record, inside the transaction writing it; sent are the messages
// as just recorded. It returns the steps they reached.
func (q *Queue) applyStored(ctx context.Context, tx *sql.Tx, sent []Message) ([]Message, error) {
	if len(sent) == 0 {
		return nil, nil
	}
	byWAID := make(map[string]int, len(sent))
	waIDs := make([]string, len(sent))
	for i, m := range sent {
		byWAID[m.WAID], waIDs[i] = i, m.WAID
	}
	args, marks := inList([]any{q.opts.Session}, waIDs)
	rows, err := tx.QueryContext(ctx, `SELECT wa_id, state, min(at) FROM blacksky_receipts
		WHERE session_id = $1 AND wa_id IN (`+marks+`) GROUP BY wa_id, state`, args...)
	if err != nil {
		return nil, fmt.Errorf("read receipts that came first: %w", err)
	}
	early := map[int][]stamp{}
	for rows.Next() {
		var waID, state string
		var at int64
		if err := rows.Scan(&waID, &state, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read receipts that came first: %w", err)
		}
		i := byWAID[waID]
		early[i] = append(early[i], stamp{State(state), fromMS(at)})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read receipts that came first: %w", err)
	}
	var steps []Message
	for i, m := range sent {
		if len(early[i]) == 0 {
			continue
		}
		got, err := q.advance(ctx, tx, m, early[i])
		if err != nil {
			return nil, err
		}
		steps = append(steps, got...)
	}
	return steps, nil
}

// advance moves the sent message m on by the receipts' stamps and writes
// it; it returns m once for each step newly reached, in the step's state.
func (q *Queue) advance(ctx context.Context, tx *sql.Tx, m Message, stamps []stamp) ([]Message, error) {
	var steps []Message
	reach := func(at *time.Time, state State, when time.Time) {
		if !at.IsZero() {
			return
		}
		*at = latest(when, m.SentAt) // WhatsApp's seconds may fall before our ack's milliseconds
		step := m
		step.State = state
		steps = append(steps, step)
	}
	// Delivered first: a read or played receipt implies it.
	slices.SortStableFunc(stamps, func(a, b stamp) int { return stepRank(a.state) - stepRank(b.state) })
	for _, s := range stamps {
		reach(&m.DeliveredAt, Delivered, s.at)
		switch s.state {
		case Read:
			reach(&m.ReadAt, Read, s.at)
		case Played:
			reach(&m.PlayedAt, Played, s.at)
		}
	}
	if len(steps) == 0 {
		return nil, nil
	}
	m.State = m.furthest()
	for i := range steps {
		steps[i].DeliveredAt, steps[i].ReadAt, steps[i].PlayedAt = m.DeliveredAt, m.ReadAt, m.PlayedAt
	}
	_, err := tx.ExecContext(ctx, `UPDATE blacksky_outbox SET receipt_state = $1,
		delivered_at = $2, read_at = $3, played_at = $4 WHERE session_id = $5 AND id = $6`,
		string(m.State), nullMS(m.DeliveredAt), nullMS(m.ReadAt), nullMS(m.PlayedAt), q.opts.Session, m.ID)
	if err != nil {
		return nil, fmt.Errorf("apply receipt to message %d: %w", m.ID, err)
	}
	return steps, nil
}

// furthest is the step a sent message's times say it reached.
func (m Message) furthest() State {
	switch {
	case !m.PlayedAt.IsZero():
		return Played
	case !m.ReadAt.IsZero():
		return Read
	case !m.DeliveredAt.IsZero():
		return Delivered
	case !m.UndeliveredAt.IsZero():
		return Undelivered
	}
	return Sent
}

// stepRank orders the steps after sent.
func stepRank(s State) int {
	return slices.Index([]State{Sent, Undelivered, Delivered, Read, Played}, s)
}

func latest(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// nullMS is t as a nullable time column.
func nullMS(t time.Time) sql.NullInt64 {
	return sql.NullInt64{Int64: ms(t), Valid: !t.IsZero()}
}

// fromChat reports whether a receipt from chat (whose known addresses are
// addrs, addressesOf) can be for a message sent to to: the same chat, or a
// phone number and a LID whatsmeow has not yet learnt are one user (a
// receipt comes from the address WhatsApp delivered to, which may be one
// the bot never wrote to). The message IDs are ours and random, so this
// only keeps a receipt that names another user's message from applying.
func fromChat(to, chat string, addrs []string) bool {
	if slices.Contains(addrs, to) {
		return true
	}
	_, toServer, _ := strings.Cut(to, "@")
	_, server, _ := strings.Cut(chat, "@")
	crossed := (toServer == pnServer && server == lidServer) || (toServer == lidServer && server == pnServer)
	return crossed && len(addrs) == 1
}

// addressesOf is chat and the other address whatsmeow's LID map
// (whatsmeow_lid_map, in the same database) knows for the same user: a
// phone-number JID and its LID, or a LID and its phone number. A receipt
// for a message sent to a phone number may come from the LID.
func addressesOf(ctx context.Context, db rowsQuerier, chat string) ([]string, error) {
	addrs := []string{chat}
	user, server, ok := strings.Cut(chat, "@")
	if !ok || (server != pnServer && server != lidServer) {
		return addrs, nil
	}
	rows, err := db.QueryContext(ctx, "SELECT pn, lid FROM whatsmeow_lid_map WHERE pn = $1 OR lid = $1", user)
	if err != nil {
		return nil, fmt.Errorf("look up the other address of %s: %w", chat, err)
	}
	defer rows.Close()
	for rows.Next() {
		var pn, lid string
		if err := rows.Scan(&pn, &lid); err != nil {
			return nil, fmt.Errorf("look up the other address of %s: %w", chat, err)
		}
		if server == pnServer && pn == user {
			addrs = append(addrs, lid+"@"+lidServer)
		} else if server == lidServer && lid == user {
			addrs = append(addrs, pn+"@"+pnServer)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up the other address of %s: %w", chat, err)
	}
	return addrs, nil
}

// StoredReceipt is one receipt as stored for a message.
type StoredReceipt struct {
	State      State     `json:"state"`
	Sender     string    `json:"sender"` // the device (in a group, the participant)
	Chat       string    `json:"chat"`   // as WhatsApp named it: phone number or LID
	At         time.Time `json:"at"`     // WhatsApp's time
	ReceivedAt time.Time `json:"received_at"`
}

// Receipts returns the receipts stored for message id, oldest first:
// which device said what and when. ErrNotFound for an id that names no
// message.
func (q *Queue) Receipts(ctx context.Context, id int64) ([]StoredReceipt, error) {
	m, err := q.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	rows, err := q.db.QueryContext(ctx, `SELECT state, sender, chat, at, received_at FROM blacksky_receipts
		WHERE session_id = $1 AND wa_id = $2 ORDER BY at, received_at, state, sender`, q.opts.Session, m.WAID)
	if err != nil {
		return nil, fmt.Errorf("read the receipts of message %d: %w", id, err)
	}
	defer rows.Close()
	out := []StoredReceipt{}
	for rows.Next() {
		var r StoredReceipt
		var state string
		var at, received int64
		if err := rows.Scan(&state, &r.Sender, &r.Chat, &at, &received); err != nil {
			return nil, fmt.Errorf("read the receipts of message %d: %w", id, err)
		}
		r.State, r.At, r.ReceivedAt = State(state), fromMS(at), fromMS(received)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the receipts of message %d: %w", id, err)
	}
	return out, nil
}
