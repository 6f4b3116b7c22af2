package bot_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

func TestMain(m *testing.M) {
	testkit.InitProcess()
	os.Exit(m.Run())
}

// The real whatsmeow client against the sandbox: messages are stored and
// acknowledged before any handling, handled once the worker runs, and
// answered through the outgoing queue; owners get the connected notice once.
func TestEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	srv := testkit.Sandbox(t, sandbox.Options{})
	owner, err := srv.AddContact("15550000002")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := srv.AddContact("15550000003")
	if err != nil {
		t.Fatal(err)
	}
	st := testkit.Store(t, store.SQLite)
	var log *slog.Logger
	if os.Getenv("BOT_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	storeFailed := make(chan struct{}, 10)
	botLog := slog.New(&watchHandler{Handler: slog.DiscardHandler, match: "could not store", ch: storeFailed})
	if log != nil {
		botLog = slog.New(&watchHandler{Handler: log.Handler(), match: "could not store", ch: storeFailed})
	}

	hook := newHookRecorder(t)
	wh, err := webhook.New(st.DB(), st.Engine(), webhook.Options{
		URL: hook.srv.URL, Secret: "topsecret", Session: "e2e", PollInterval: 20 * time.Millisecond, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	q := outgoing.New(st.DB(), st.Engine(), outgoing.Options{
		Session: "e2e", PollInterval: 20 * time.Millisecond, Logger: log, Settled: wh.OutgoingSettled,
		Backoff: backoff.Policy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond},
	})
	var sup *supervisor.Supervisor
	b := bot.New(bot.Options{
		Webhook: wh,
		DB:      st.DB(), Engine: st.Engine(), Session: "e2e", Owners: []string{"+1 555 000 0002"},
		BotName: "e2ebot", Version: "v0.0.1", Queue: q, Logger: botLog, PollInterval: 20 * time.Millisecond,
		Status: func() supervisor.Status { return sup.Status() },
	})
	stack := startLinked(t, ctx, srv, st, "e2e", b, q, wh, log)
	defer stack.stop()
	sup = stack.sup

	// Before the worker runs: the message is stored and WhatsApp gets its
	// receipt, though nothing handled it yet.
	id, err := stranger.Send(ctx, ".ping")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, srv, "the receipt of .ping", func() bool {
		for _, r := range stranger.Receipts() {
			if r.ID == id {
				return true
			}
		}
		return false
	})
	m, ok, err := b.Get(ctx, stranger.JID().String(), id)
	if err != nil || !ok || m.State != bot.Pending {
		t.Fatalf("stored message: %+v %v %v; want it pending", m, ok, err)
	}

	// The worker starts: the owner gets the connected notice, .ping its pong.
	stack.run(b.Run)
	inbox := func(c *sandbox.Contact, want string) {
		t.Helper()
		waitFor(ctx, t, srv, want, func() bool { return countText(c, want) > 0 })
	}
	inbox(owner, "e2ebot v0.0.1 connected.")
	inbox(stranger, "Pong!")

	if _, err := stranger.Send(ctx, ".queue"); err != nil {
		t.Fatal(err)
	}
	inbox(stranger, "Sorry, .queue is only for the bot's owner.")

	if _, err := owner.Send(ctx, ".STATUS"); err != nil {
		t.Fatal(err)
	}
	inbox(owner, "Connection: connected")
	status := lastText(owner)
	for _, want := range []string{"Uptime: ", "Outgoing: ", "undelivered), 0 dead", "Incoming: ", "Memory: "} {
		if !strings.Contains(status, want) {
			t.Errorf("status %q lacks %q", status, want)
		}
	}
	if strings.Contains(status, "Outgoing: 0 pending, 0 sending, 0 sent") {
		t.Errorf("status shows no sent messages although two were sent: %q", status)
	}

	// A message that cannot be stored is not acknowledged: WhatsApp
	// delivers it again at the next connection, and whatsmeow decrypts it
	// from its buffer (the Signal session has moved on).
	if _, err := st.DB().ExecContext(ctx, "ALTER TABLE blacksky_inbox RENAME TO blacksky_inbox_away"); err != nil {
		t.Fatal(err)
	}
	lost, err := stranger.Send(ctx, ".ping again")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-storeFailed:
	case <-ctx.Done():
		t.Fatal("storing never failed")
	}
	if _, err := st.DB().ExecContext(ctx, "ALTER TABLE blacksky_inbox_away RENAME TO blacksky_inbox"); err != nil {
		t.Fatal(err)
	}
	for _, r := range stranger.Receipts() {
		if r.ID == lost {
			t.Fatal("the bot sent a receipt for a message it could not store")
		}
	}
	sup.Reconnect()
	waitFor(ctx, t, srv, "the second pong", func() bool { return countText(stranger, "Pong!") == 2 })
	waitFor(ctx, t, srv, "the receipt of the redelivered message", func() bool {
		for _, r := range stranger.Receipts() {
			if r.ID == lost {
				return true
			}
		}
		return false
	})

	// The webhook got the incoming .ping, signed, and the pong's delivery.
	poll(ctx, t, "webhook events", func() bool {
		return hook.find(webhook.KindMessageReceived, `"text":".ping"`) != nil && hook.find(webhook.KindMessageSent, `"to":"`+stranger.JID().String()) != nil
	})
	in := hook.find(webhook.KindMessageReceived, `"text":".ping"`)
	if !webhook.Verify("topsecret", in.body, in.header.Get("X-Blacksky-Signature")) {
		t.Error("bad webhook signature")
	}
	// The contact writes from its LID, as WhatsApp does now: the payload has
	// both addresses, and the chat is its number's.
	for _, want := range []string{`"sender":"` + stranger.LID().String() + `"`, `"sender_alt":"` + stranger.JID().String() + `"`, `"chat":"` + stranger.JID().String() + `"`, `"id":"` + id + `"`} {
		if !strings.Contains(string(in.body), want) {
			t.Errorf("webhook body %s lacks %s", in.body, want)
		}
	}

	// Each reply arrived once, and the notice once.
	for _, c := range []struct {
		contact *sandbox.Contact
		text    string
	}{{owner, "connected."}, {stranger, "only for the bot's owner"}, {owner, "Connection: "}} {
		if n := countText(c.contact, c.text); n != 1 {
			t.Errorf("%s received %q %d times", c.contact.Number(), c.text, n)
		}
	}
}

// hookRecorder is a webhook endpoint that keeps what it received.
type hookRecorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []hookHit
}

type hookHit struct {
	header http.Header
	body   []byte
}

func newHookRecorder(t testing.TB) *hookRecorder {
	h := &hookRecorder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.hits = append(h.hits, hookHit{r.Header.Clone(), body})
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// find returns the first event of kind whose body contains sub.
func (h *hookRecorder) find(kind, sub string) *hookHit {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, e := range h.hits {
		if e.header.Get("X-Blacksky-Event") == kind && strings.Contains(string(e.body), sub) {
			return &h.hits[i]
		}
	}
	return nil
}

func countText(c *sandbox.Contact, sub string) int {
	n := 0
	for _, m := range c.Inbox() {
		if strings.Contains(m.Text, sub) {
			n++
		}
	}
	return n
}

func lastText(c *sandbox.Contact) string {
	in := c.Inbox()
	if len(in) == 0 {
		return ""
	}
	return in[len(in)-1].Text
}

// waitFor waits on the sandbox's state changes until cond holds.
func waitFor(ctx context.Context, t testing.TB, srv *sandbox.Server, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := srv.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// poll checks cond every few milliseconds until it holds, for state the
// sandbox does not see.
func poll(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// watchHandler signals ch for every record whose message contains match.
type watchHandler struct {
	slog.Handler
	match string
	ch    chan struct{}
}

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *watchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithAttrs(as), match: h.match, ch: h.ch}
}

func (h *watchHandler) WithGroup(name string) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithGroup(name), match: h.match, ch: h.ch}
}
