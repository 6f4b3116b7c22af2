package bot

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

const (
	ownerPhone    = "4915100000001"
	ownerJID      = ownerPhone + "@s.whatsapp.net"
	strangerJID   = "4915100000002@s.whatsapp.net"
	groupJID      = "120363000000000001@g.us"
	ownerLID      = "111111111111111@lid"
	strangerLIDPN = "4915100000003@s.whatsapp.net"
)

// openStore migrates a fresh database of kind.
func openStore(t testing.TB, kind store.Engine) *store.Store {
	t.Helper()
	return testkit.Store(t, kind)
}

// fixture is a bot on a fresh database with a fake clock.
type fixture struct {
	st    *store.Store
	q     *outgoing.Queue
	bot   *Bot
	clock *testkit.Clock
}

func newFixture(t testing.TB, kind store.Engine, tune func(*Options)) *fixture {
	t.Helper()
	st := openStore(t, kind)
	f := &fixture{st: st, clock: testkit.NewClock(time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC))}
	f.q = outgoing.New(st.DB(), st.Engine(), outgoing.Options{Session: "s", Now: f.clock.Now})
	opts := Options{
		DB: st.DB(), Engine: st.Engine(), Session: "s", Owners: []string{"+49 151 00000001"},
		BotName: "testbot", Version: "v1", Queue: f.q, Now: f.clock.Now,
		Started: f.clock.Now().Add(-time.Hour), StartID: "start1",
	}
	if tune != nil {
		tune(&opts)
	}
	f.bot = New(opts)
	return f
}

var msgSeq atomic.Int64

// msg builds a private text message from sender.
func msg(sender, text string) Message {
	return Message{Chat: sender, MsgID: "3EB0" + strconv.FormatInt(msgSeq.Add(1), 10), Sender: sender, Kind: "text", Text: text}
}

// deliver stores m as received now and handles its chat synchronously.
func (f *fixture) deliver(t testing.TB, m Message) Message {
	t.Helper()
	ctx := context.Background()
	if m.SentAt.IsZero() {
		m.SentAt = f.clock.Now().Add(-time.Second)
	}
	m.ReceivedAt = f.clock.Now()
	if _, err := f.bot.Store(ctx, m); err != nil {
		t.Fatal(err)
	}
	f.bot.handleDue(ctx)
	got, ok, err := f.bot.Get(ctx, m.Chat, m.MsgID)
	if err != nil || !ok {
		t.Fatalf("Get: %v %v", ok, err)
	}
	return got
}

// replies returns the texts queued for chat, oldest first.
func (f *fixture) replies(t testing.TB, chat string) []string {
	t.Helper()
	ms, err := f.q.List(context.Background(), outgoing.Filter{To: chat, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(ms) - 1; i >= 0; i-- {
		out = append(out, ms[i].Text)
	}
	return out
}

// handleDue handles every due message now, one after another, and returns
// when none is left: the worker's steps without its goroutines.
func (b *Bot) handleDue(ctx context.Context) {
	for ctx.Err() == nil {
		claimed, err := b.jobs.Claim(ctx, 1, b.owner, b.lease())
		if err != nil || len(claimed) == 0 {
			return
		}
		b.handle(ctx, claimed[0])
	}
}
