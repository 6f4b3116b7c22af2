package bot_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// A contact's message arrives undecryptable (the sandbox's undecryptable
// fault: its MAC fails, and the contact ignores the retry receipt). The bot
// counts it, reports message.undecryptable to the webhook, and the phone,
// asked by whatsmeow, sends it again: the command runs once with the
// original text, in the contact's number's chat. The same ciphertext
// delivered again after a reconnect is counted, reported no second time,
// and handled no second time.
func TestUndecryptableMessageRecoveredFromPhone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv := testkit.Sandbox(t, sandbox.Options{})
	alice, err := srv.AddContact("15550000004")
	if err != nil {
		t.Fatal(err)
	}
	st := testkit.Store(t, store.SQLite)
	hook := newHookRecorder(t)
	wh, err := webhook.New(st.DB(), st.Engine(), webhook.Options{URL: hook.srv.URL, Secret: "s3", Session: "und", PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	q := outgoing.New(st.DB(), st.Engine(), outgoing.Options{
		Session: "und", PollInterval: 20 * time.Millisecond, Settled: wh.OutgoingSettled,
		Backoff: backoff.Policy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	m := metrics.New()
	var log *slog.Logger
	if os.Getenv("BOT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := bot.New(bot.Options{DB: st.DB(), Engine: st.Engine(), Session: "und", Queue: q, Webhook: wh, Metrics: m, PollInterval: 20 * time.Millisecond, Logger: log})
	var mu sync.Mutex
	var echoed []string
	if err := b.Register(bot.Command{Name: "echo", Run: func(ctx context.Context, c *bot.Context) error {
		mu.Lock()
		echoed = append(echoed, c.Message.Text)
		mu.Unlock()
		c.Reply(ctx, "echo: "+c.Raw)
		return nil
	}}); err != nil {
		t.Fatal(err)
	}
	stack := startLinked(t, ctx, srv, st, "und", b, q, wh, log)
	defer stack.stop()
	stack.run(b.Run)
	sup := stack.sup
	connected := func() { t.Helper(); stack.connected(t, ctx) }
	send := func(text string) string {
		t.Helper()
		id, err := alice.Send(ctx, text)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	send(".echo first")
	waitFor(ctx, t, srv, "the first echo", func() bool { return countText(alice, "echo: first") == 1 })

	since := srv.LastSeq()
	if err := srv.Inject(sandbox.Fault{Kind: sandbox.FaultUndecryptable}); err != nil {
		t.Fatal(err)
	}
	id := send(".echo the lost one")
	waitFor(ctx, t, srv, "the phone's copy", func() bool { return srv.CountEvents(sandbox.EventPlaceholderResent, since) == 1 })
	waitFor(ctx, t, srv, "the echo of the recovered message", func() bool { return countText(alice, "echo: the lost one") == 1 })
	if got := counter(t, m.UndecryptableMessages); got != 1 {
		t.Errorf("undecryptable counter %v, want 1", got)
	}
	if got := counter(t, m.RecoveredMessages); got != 1 {
		t.Errorf("recovered counter %v, want 1", got)
	}
	// The phone's copy names the contact by LID only; it is stored in the
	// number's chat, where the sender's own copy would have gone.
	stored, ok, err := b.Get(ctx, alice.JID().String(), id)
	if err != nil || !ok || stored.Text != ".echo the lost one" || stored.SenderAlt != alice.JID().String() {
		t.Fatalf("stored recovered message %+v %v %v", stored, ok, err)
	}
	poll(ctx, t, "the undecryptable webhook event", func() bool {
		return hook.find(webhook.KindMessageUndecryptable, `"id":"`+id+`"`) != nil
	})
	var ev struct {
		Data bot.Undecryptable `json:"data"`
	}
	if err := json.Unmarshal(hook.find(webhook.KindMessageUndecryptable, id).body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Data.Chat != alice.JID().String() || ev.Data.Sender != alice.LID().String() || ev.Data.SenderAlt != alice.JID().String() ||
		ev.Data.Unavailable || ev.Data.SentAt.IsZero() {
		t.Errorf("undecryptable event data %+v", ev.Data)
	}

	// The undecryptable copy is still pending at the server (the bot's
	// retry receipt did not settle it): a reconnect brings it again.
	sup.Reconnect()
	poll(ctx, t, "the second undecryptable copy", func() bool { return counter(t, m.UndecryptableMessages) == 2 })
	connected()
	send(".echo last")
	waitFor(ctx, t, srv, "the last echo", func() bool { return countText(alice, "echo: last") == 1 })
	mu.Lock()
	got := strings.Join(echoed, "|")
	mu.Unlock()
	if got != ".echo first|.echo the lost one|.echo last" {
		t.Errorf("the command ran for %q", got)
	}
	if n := countText(alice, "echo: the lost one"); n != 1 {
		t.Errorf("the recovered message was answered %d times", n)
	}
	if n := hook.count(webhook.KindMessageUndecryptable); n != 1 {
		t.Errorf("%d message.undecryptable events, want 1", n)
	}
}

// counter reads a Prometheus counter.
func counter(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var out dto.Metric
	if err := c.Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetCounter().GetValue()
}

// count is how many events of kind the endpoint received (attempts of one event included).
func (h *hookRecorder) count(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, e := range h.hits {
		if e.header.Get("X-Blacksky-Event") == kind {
			n++
		}
	}
	return n
}
