package outbox

import (
	"context"
	"fmt"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

func eachStoreB(b *testing.B, f func(b *testing.B, e *env)) {
	for _, kind := range []store.Kind{store.SQLite, store.Postgres} {
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
