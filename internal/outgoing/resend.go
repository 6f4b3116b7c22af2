package outgoing

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"
)

// When a resend under the same ID helps. WhatsApp's server keeps a message
// for each device it was encrypted for until that device takes it, so a
// message to a recipient whose phone is off arrives when it is back, and
// sending it again then would only make a second copy for the recipient to
// discard by its ID. What the server cannot deliver is a message encrypted
// for a device that is gone: the recipient reinstalled WhatsApp or moved to
// a new phone, and came back with a new identity key. The server then tells
// the sender's devices (an "identity" encrypt notification; whatsmeow drops
// the old sessions of that user and emits events.IdentityChange), and
// WhatsApp's own apps send every message of that chat that has no delivery
// receipt again, under its ID, encrypted for the new keys (the
// "retransmission" behind the 2017 reports on WhatsApp's non-blocking key
// change: https://www.dominicalhambra.com/notes/2017/04/21/whatsapps-end-to-end-encryption-relies-on-the).
// So does this queue: on an identity change of a chat, its sent messages
// that no device reported having (sent or undelivered) are made pending
// again, first in their chat's order; whatsmeow encrypts them for the
// devices the user has now. whatsmeow also reports an implicit change when
// it meets the new identity itself: in a message from the user, or in the
// keys it fetches to send to them (its deletion of the old identities on
// the notification misses LID addresses, "<lid>_1:<device>", so a resend to
// a LID meets the new keys as untrusted, and whatsmeow clears them and
// reports the change again). Only messages recorded sent before the change
// was met are sent again: the one that met it went to the new keys. A
// resend is never made for a timeout alone: the message is still waiting
// at the server.

// ResendUndelivered makes the messages to chat (or to its other address,
// phone number or LID) recorded sent up to before that no delivery receipt
// reached pending again, to be sent under their WhatsApp IDs; it returns
// how many. Those sent after the change went to the new keys already.
func (q *Queue) ResendUndelivered(ctx context.Context, chat string, before time.Time) (int64, error) {
	var n int64
	err := q.inTx(ctx, "resend undelivered messages", func(tx *sql.Tx) error {
		addrs, err := addressesOf(ctx, tx, chat)
		if err != nil {
			return err
		}
		args, marks := inList([]any{q.opts.Session}, addrs)
		args = append(args, ms(before))
		rows, err := tx.QueryContext(ctx, `SELECT id FROM blacksky_outbox WHERE session_id = $1
			AND state = 'sent' AND receipt_state IN ('', 'undelivered') AND chat IN (`+marks+`)
			AND sent_at <= $`+strconv.Itoa(len(args)), args...)
		if err != nil {
			return fmt.Errorf("find undelivered messages to %s: %w", chat, err)
		}
		var ids []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return fmt.Errorf("find undelivered messages to %s: %w", chat, err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("find undelivered messages to %s: %w", chat, err)
		}
		n, err = q.jobs.RedoDone(ctx, tx, ids)
		return err
	})
	if err != nil {
		return 0, err
	}
	if n > 0 {
		q.stats.resent.Add(n)
		q.log.Info("recipient's identity changed; sending their undelivered messages again under the same IDs", "to", chat, "count", n)
		q.wakeUp()
	}
	return n, nil
}
