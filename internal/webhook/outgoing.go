package webhook

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
)

// OutgoingStatus is the payload of the events of an outgoing message:
// message.sent, message.undelivered, message.delivered, message.read,
// message.played and message.dead.
type OutgoingStatus struct {
	// ID is the message's id in /api/v1/messages/{id}.
	ID int64 `json:"id"`
	// OutboxID is ID under the name events carried before (issue 16),
	// kept for receivers that read it.
	OutboxID       int64  `json:"outbox_id"`
	To             string `json:"to"`
	ToLID          string `json:"to_lid,omitempty"` // the LID of a phone-number chat, when known
	WAID           string `json:"wa_id"`
	State          string `json:"state"`
	Attempts       int    `json:"attempts"`
	Error          string `json:"error,omitempty"`
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// Time is when the message reached State.
	Time time.Time `json:"time"`
	// The times of the steps reached so far (message.sent has SentAt only).
	SentAt      time.Time `json:"sent_at,omitzero"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	ReadAt      time.Time `json:"read_at,omitzero"`
	PlayedAt    time.Time `json:"played_at,omitzero"`
}

// OutgoingSettled writes an event for each message that reached a new
// state, inside the transaction that records it (it is the queue's
// outgoing.Options.Settled): the event is stored exactly when the change
// is. The event's ID names the message and the step, so each step is
// reported once: message.delivered, message.read and message.played are
// reached once per message; message.sent and message.dead carry the time
// too, as do message.undelivered, so a dead message that an operator
// retries and that is then sent, or a message sent again after its
// recipient's identity changed, reports each time.
func (c *Client) OutgoingSettled(ctx context.Context, tx *sql.Tx, msgs []outgoing.Message) error {
	for _, m := range msgs {
		kind, at, timed := outgoingEvent(m)
		if kind == "" {
			continue
		}
		id := "out_" + strconv.FormatInt(m.ID, 10) + "_" + string(m.State)
		if timed {
			id += "_" + strconv.FormatInt(at.UnixMilli(), 10)
		}
		status := OutgoingStatus{
			ID: m.ID, OutboxID: m.ID, To: m.To, ToLID: m.ToLID, WAID: m.WAID, State: string(m.State), Attempts: m.Attempts,
			Error: m.LastError, IdempotencyKey: m.IdempotencyKey, Time: at,
			SentAt: m.SentAt, DeliveredAt: m.DeliveredAt, ReadAt: m.ReadAt, PlayedAt: m.PlayedAt,
		}
		if err := c.EnqueueID(ctx, tx, id, kind, status); err != nil {
			return fmt.Errorf("event for outgoing message %d: %w", m.ID, err)
		}
	}
	return nil
}

// outgoingEvent is the event kind of m's new state, the state's time, and
// whether the time is part of the event's ID; "" for a state with none.
func outgoingEvent(m outgoing.Message) (kind string, at time.Time, timed bool) {
	switch m.State {
	case outgoing.Sent:
		return KindMessageSent, m.SentAt, true
	case outgoing.Dead:
		return KindMessageDead, m.UpdatedAt, true
	case outgoing.Undelivered:
		return KindMessageUndelivered, m.UndeliveredAt, true
	case outgoing.Delivered:
		return KindMessageDelivered, m.DeliveredAt, false
	case outgoing.Read:
		return KindMessageRead, m.ReadAt, false
	case outgoing.Played:
		return KindMessagePlayed, m.PlayedAt, false
	}
	return "", time.Time{}, false
}
