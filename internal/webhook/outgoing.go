package webhook

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
)

// OutgoingStatus is the payload of message.sent and message.dead events.
type OutgoingStatus struct {
	// ID is the message's id in /api/v1/messages/{id}.
	ID int64 `json:"id"`
	// OutboxID is ID under the name events carried before (issue 16),
	// kept for receivers that read it.
	OutboxID       int64     `json:"outbox_id"`
	To             string    `json:"to"`
	ToLID          string    `json:"to_lid,omitempty"` // the LID of a phone-number chat, when known
	WAID           string    `json:"wa_id"`
	State          string    `json:"state"`
	Attempts       int       `json:"attempts"`
	Error          string    `json:"error,omitempty"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Time           time.Time `json:"time"`
}

// OutgoingSettled writes a message.sent or message.dead event for each
// message, inside the transaction that records its new state (it is the
// queue's outgoing.Options.Settled): the event is stored exactly when the
// change is. Its ID names the message, the state and the time, so a dead
// message that an operator retries and that is then sent reports both.
// The dispatcher picks the events up at its next poll (PollInterval).
func (c *Client) OutgoingSettled(ctx context.Context, tx *sql.Tx, msgs []outgoing.Message) error {
	for _, m := range msgs {
		var kind string
		var at time.Time
		switch m.State {
		case outgoing.Sent:
			kind, at = KindMessageSent, m.SentAt
		case outgoing.Dead:
			kind, at = KindMessageDead, m.UpdatedAt
		default:
			continue
		}
		id := "out_" + strconv.FormatInt(m.ID, 10) + "_" + string(m.State) + "_" + strconv.FormatInt(at.UnixMilli(), 10)
		status := OutgoingStatus{
			ID: m.ID, OutboxID: m.ID, To: m.To, ToLID: m.ToLID, WAID: m.WAID, State: string(m.State), Attempts: m.Attempts,
			Error: m.LastError, IdempotencyKey: m.IdempotencyKey, Time: at,
		}
		if err := c.EnqueueID(ctx, tx, id, kind, status); err != nil {
			return fmt.Errorf("event for outgoing message %d: %w", m.ID, err)
		}
	}
	return nil
}
