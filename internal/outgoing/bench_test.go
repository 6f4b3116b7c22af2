package outgoing

import (
	"context"
	"fmt"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

func eachStoreB(b *testing.B, f func(b *testing.B, e *env)) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		b.Run(string(kind), func(b *testing.B) { f(b, newEnv(b, kind)) })
	}
}

// BenchmarkEnqueue measures one enqueue per transaction, over 20 chats.
func BenchmarkEnqueue(b *testing.B) {
	eachStoreB(b, func(b *testing.B, e *env) {
		q := e.queue(b, Options{MaxPending: 1 << 30})
		ctx := context.Background()
		b.ResetTimer()
		for i := range b.N {
			if _, _, err := q.Enqueue(ctx, Request{To: chatJID(i % 20), Text: "benchmark"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDrain measures delivering a backlog of b.N messages over 20
// chats to a sender that does nothing.
func BenchmarkDrain(b *testing.B) {
	eachStoreB(b, func(b *testing.B, e *env) {
		q := e.queue(b, Options{MaxPending: 1 << 30})
		ctx := context.Background()
		var last Message
		for i := range b.N {
			var err error
			if last, _, err = q.Enqueue(ctx, Request{To: chatJID(i % 20), Text: fmt.Sprint(i)}); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		stop := run(b, q, SenderFunc(func(context.Context, Message) error { return nil }), NewSwitchGate(true))
		testkit.WaitFor(b, "the backlog to drain", func() bool {
			m, err := q.Get(ctx, last.ID)
			return err == nil && m.State == Sent
		})
		b.StopTimer()
		stop()
		if d, _ := q.Depths(ctx); d[Sent] != b.N {
			b.Fatalf("depths after drain: %v", d)
		}
	})
}

// fillBacklog inserts pending messages with texts of textBytes over 100
// chats, in one statement (the enqueue path would take minutes for this).
func fillBacklog(b *testing.B, e *env, q *Queue, n, textBytes int) {
	b.Helper()
	text := "repeat('x', $3)"
	series := "generate_series(1, $2) AS g(i)"
	if e.kind == store.SQLite {
		// SQLite has neither; hex(randomblob(n/2)) is n characters.
		text = "hex(randomblob($3 / 2))"
		series = "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < $2) SELECT i FROM s) AS g"
	}
	query := `INSERT INTO blacksky_outbox (session_id, chat, text, wa_id, state, created_at, queued_at, run_at, updated_at)
		SELECT $1, '49151000' || (g.i % 100) || '@s.whatsapp.net', ` + text + `, 'BENCH' || g.i, 'pending', 0, 0, 0, 0 FROM ` + series
	if _, err := q.db.ExecContext(context.Background(), query, q.opts.Session, n, textBytes); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkQueueSummary measures GET /api/v1/queue's two queries on a
// backlog of 20,000 messages of 64 KiB each.
func BenchmarkQueueSummary(b *testing.B) {
	eachStoreB(b, func(b *testing.B, e *env) {
		q := e.queue(b, Options{MaxPending: 1 << 30})
		fillBacklog(b, e, q, 20000, 64<<10)
		ctx := context.Background()
		b.ResetTimer()
		for range b.N {
			d, err := q.Depths(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if d[Pending] != 20000 {
				b.Fatalf("depths %v", d)
			}
			if _, err := q.OldestPendingAge(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
