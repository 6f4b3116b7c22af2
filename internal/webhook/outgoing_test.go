package webhook

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// Outgoing messages that become sent or dead are reported once each, and
// an event exists exactly when its state change does: when recording the
// change fails, neither is stored, and the retry that follows stores both.
func TestOutgoingEventsCommitWithTheStateChange(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind)
			ctx := context.Background()
			c := newClient(t, st, "https://example.invalid/hook", nil)
			var failures atomic.Int32
			failures.Store(1)
			q := outgoing.New(st.DB(), st.Engine(), outgoing.Options{
				Session: "s", PollInterval: 5 * time.Millisecond, Lease: 300 * time.Millisecond,
				Settled: func(ctx context.Context, tx *sql.Tx, msgs []outgoing.Message) error {
					if err := c.OutgoingSettled(ctx, tx, msgs); err != nil {
						return err
					}
					if msgs[0].State == outgoing.Sent && failures.Add(-1) >= 0 {
						return errors.New("database went away before the commit")
					}
					return nil
				},
			})
			good, _, err := q.Enqueue(ctx, outgoing.Request{To: "4915100000001", Text: "hi", IdempotencyKey: "k1"})
			if err != nil {
				t.Fatal(err)
			}
			bad, _, err := q.Enqueue(ctx, outgoing.Request{To: "4915100000002", Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			var sends atomic.Int32
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- q.Run(runCtx, outgoing.SenderFunc(func(_ context.Context, m outgoing.Message) error {
					if m.ID == bad.ID {
						return outgoing.Permanent(errors.New("not on WhatsApp"))
					}
					sends.Add(1)
					return nil
				}), outgoing.NewSwitchGate(true))
			}()
			waitMessage(t, q, good.ID, outgoing.Sent)
			waitMessage(t, q, bad.ID, outgoing.Dead)
			stop()
			<-done

			got := outgoingEvents(t, st)
			if len(got) != 2 {
				t.Fatalf("events %+v, want one message.sent and one message.dead", got)
			}
			if s := got[KindMessageSent]; s.ID != good.ID || s.OutboxID != good.ID || s.State != "sent" || s.WAID != good.WAID || s.IdempotencyKey != "k1" || s.To != "4915100000001@s.whatsapp.net" || s.Time.IsZero() {
				t.Errorf("sent event %+v", s)
			}
			if d := got[KindMessageDead]; d.ID != bad.ID || d.State != "dead" || d.Error == "" {
				t.Errorf("dead event %+v", d)
			}
			if n := sends.Load(); n != 2 {
				t.Errorf("%d sends of the good message; want 2 (the first was not recorded, so it was sent again)", n)
			}
		})
	}
}

// waitMessage waits until message id is in state want.
func waitMessage(t *testing.T, q *outgoing.Queue, id int64, want outgoing.State) {
	t.Helper()
	eventually(t, func(ctx context.Context) (bool, string) {
		m, err := q.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return m.State == want, fmt.Sprintf("message %d is %s, want %s", id, m.State, want)
	})
}

// outgoingEvents reads the stored message.sent and message.dead events by kind.
func outgoingEvents(t *testing.T, st *store.Store) map[string]OutgoingStatus {
	t.Helper()
	rows, err := st.DB().QueryContext(context.Background(), `SELECT kind, body FROM blacksky_webhook WHERE session_id = 's' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]OutgoingStatus{}
	for rows.Next() {
		var kind, body string
		if err := rows.Scan(&kind, &body); err != nil {
			t.Fatal(err)
		}
		var env struct{ Data OutgoingStatus }
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			t.Fatal(err)
		}
		if _, dup := got[kind]; dup {
			t.Errorf("a second %s event: %+v", kind, env.Data)
		}
		got[kind] = env.Data
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// Each step a message's receipts take it to is one event, stored in the
// transaction that records the step: a receipt that comes twice, or a
// delivery receipt after the read, adds none.
func TestReceiptEventsOncePerStep(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind)
			ctx := context.Background()
			c := newClient(t, st, "https://example.invalid/hook", nil)
			q := outgoing.New(st.DB(), st.Engine(), outgoing.Options{
				Session: "s", PollInterval: 5 * time.Millisecond, Settled: c.OutgoingSettled,
			})
			m, _, err := q.Enqueue(ctx, outgoing.Request{To: "4915100000001", Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- q.Run(runCtx, outgoing.SenderFunc(func(context.Context, outgoing.Message) error { return nil }), outgoing.NewSwitchGate(true))
			}()
			waitMessage(t, q, m.ID, outgoing.Sent)
			stop()
			<-done
			at := time.Now().Add(time.Minute).Truncate(time.Second)
			for _, r := range []struct {
				state outgoing.State
				at    time.Time
			}{{outgoing.Read, at.Add(time.Second)}, {outgoing.Read, at.Add(time.Second)}, {outgoing.Delivered, at}} {
				err := q.RecordReceipt(ctx, outgoing.Receipt{IDs: []string{m.WAID}, Chat: "4915100000001@s.whatsapp.net",
					Sender: "4915100000001@s.whatsapp.net", State: r.state, At: r.at})
				if err != nil {
					t.Fatal(err)
				}
			}
			got := outgoingEvents(t, st)
			if len(got) != 3 {
				t.Fatalf("events %+v; want message.sent, message.delivered and message.read", got)
			}
			if d := got[KindMessageDelivered]; d.ID != m.ID || d.State != "delivered" || !d.Time.Equal(at.Add(time.Second)) || d.SentAt.IsZero() {
				t.Errorf("delivered event %+v; want the read's time (the read came first)", d)
			}
			if r := got[KindMessageRead]; r.State != "read" || !r.ReadAt.Equal(at.Add(time.Second)) || !r.DeliveredAt.Equal(r.ReadAt) {
				t.Errorf("read event %+v", r)
			}
			var id string
			if err := st.DB().QueryRow(`SELECT event_id FROM blacksky_webhook WHERE kind = $1`, KindMessageRead).Scan(&id); err != nil || id != fmt.Sprintf("out_%d_read", m.ID) {
				t.Errorf("read event ID %q, %v", id, err)
			}
		})
	}
}
