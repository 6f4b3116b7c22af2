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
