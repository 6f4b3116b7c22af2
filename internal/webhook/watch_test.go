package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outbox"
	"github.com/blacksky-bot/blacksky/internal/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Outgoing messages that became sent or dead are reported once each.
func TestWatchOutbox(t *testing.T) {
	for _, kind := range []store.Kind{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind)
			ctx := context.Background()
			clock := &fakeClock{t: time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)}
			q := outbox.New(st.DB(), st.Kind(), outbox.Options{Session: "s", Now: clock.Now, PollInterval: 5 * time.Millisecond})
			c := newClient(t, st, "https://example.invalid/hook", func(o *Options) { o.Now = clock.Now })

			if err := c.ScanOutbox(ctx); err != nil { // starts the cursors at now
				t.Fatal(err)
			}
			if d, _ := c.Depths(ctx); d[Pending] != 0 {
				t.Fatalf("first scan made %d events", d[Pending])
			}
			clock.Advance(time.Second)
			good, _, err := q.Enqueue(ctx, outbox.Request{To: "4915100000001", Text: "hi", IdempotencyKey: "k1"})
			if err != nil {
				t.Fatal(err)
			}
			bad, _, err := q.Enqueue(ctx, outbox.Request{To: "4915100000002", Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- q.Run(runCtx, outbox.SenderFunc(func(_ context.Context, m outbox.Message) error {
					if m.ID == bad.ID {
						return outbox.Permanent(errors.New("not on WhatsApp"))
					}
					return nil
				}), outbox.NewSwitchGate(true))
			}()
			for _, w := range []struct {
				id    int64
				state outbox.State
			}{{good.ID, outbox.Sent}, {bad.ID, outbox.Dead}} {
				for {
					m, err := q.Get(ctx, w.id)
					if err != nil {
						t.Fatal(err)
					}
					if m.State == w.state {
						break
					}
					select {
					case <-time.After(2 * time.Millisecond):
					case <-ctx.Done():
					}
				}
			}
			stop()
			<-done

			// Within the lag nothing is reported; after it, each change once.
			if err := c.ScanOutbox(ctx); err != nil {
				t.Fatal(err)
			}
			if d, _ := c.Depths(ctx); d[Pending] != 0 {
				t.Fatalf("changes reported within the lag: %d", d[Pending])
			}
			clock.Advance(watchLag + time.Second)
			for range 2 {
				if err := c.ScanOutbox(ctx); err != nil {
					t.Fatal(err)
				}
			}
			rows, err := st.DB().QueryContext(ctx, `SELECT event_id, kind, body FROM blacksky_webhook WHERE session_id = 's' ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			got := map[string]OutgoingStatus{}
			for rows.Next() {
				var id, kind, body string
				if err := rows.Scan(&id, &kind, &body); err != nil {
					t.Fatal(err)
				}
				var env struct{ Data OutgoingStatus }
				if err := json.Unmarshal([]byte(body), &env); err != nil {
					t.Fatal(err)
				}
				got[kind] = env.Data
			}
			if len(got) != 2 {
				t.Fatalf("events %+v, want one message.sent and one message.dead", got)
			}
			if s := got[KindMessageSent]; s.OutboxID != good.ID || s.State != "sent" || s.WAID != good.WAID || s.IdempotencyKey != "k1" || s.To != "4915100000001@s.whatsapp.net" {
				t.Errorf("sent event %+v", s)
			}
			if d := got[KindMessageDead]; d.OutboxID != bad.ID || d.State != "dead" || d.Error == "" {
				t.Errorf("dead event %+v", d)
			}
		})
	}
}
