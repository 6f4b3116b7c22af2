package bot

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
	"github.com/blacksky-bot/blacksky/internal/webhook"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// TestRouting sends one message per case and checks the replies queued.
func TestRouting(t *testing.T) {
	group := func(sender, text string) Message {
		m := msg(sender, text)
		m.Chat, m.IsGroup = groupJID, true
		return m
	}
	lid := func(alt, text string) Message {
		m := msg(ownerLID, text)
		m.SenderAlt = alt
		return m
	}
	tests := []struct {
		name string
		in   Message
		want []string // substrings of the replies, in order; nil: no reply
	}{
		{"ping", msg(strangerJID, ".ping"), []string{"Pong! 1s since you sent it"}},
		{"case-insensitive", msg(strangerJID, ".PiNg"), []string{"Pong!"}},
		{"not a command", msg(strangerJID, "hello there"), nil},
		{"prefix alone", msg(strangerJID, "."), nil},
		{"unknown", msg(strangerJID, ".foo bar"), []string{"Unknown command .foo — send .menu"}},
		{"unknown long name", msg(strangerJID, "."+strings.Repeat("x", 100)), []string{"Unknown command ." + strings.Repeat("x", 32) + "… — send .menu"}},
		{"owner command refused", msg(strangerJID, ".queue"), []string{"Sorry, .queue is only for the bot's owner."}},
		{"owner command refused in group", group(strangerJID, ".reconnect"), []string{"Sorry, .reconnect is only for the bot's owner."}},
		{"owner queue", msg(ownerJID, ".queue"), []string{"Outgoing: 0 pending, 0 sending, 0 sent (0 delivered, 0 read, 0 undelivered), 0 dead\nIncoming: 0 waiting, 0 dead"}},
		{"owner by LID", lid(ownerJID, ".queue"), []string{"Outgoing: 0 pending"}},
		{"stranger by LID", lid(strangerLIDPN, ".queue"), []string{"only for the bot's owner"}},
		{"owner queue retry", msg(ownerJID, ".queue retry"), []string{"Retrying 0 dead outgoing and 0 dead incoming message(s)."}},
		{"owner queue bad arg", msg(ownerJID, ".queue flush"), []string{"Usage: .queue or .queue retry"}},
		{"menu for stranger", msg(strangerJID, ".menu"), []string{".ping — check"}},
		{"help alias", msg(strangerJID, ".HELP"), []string{"*testbot* commands:"}},
		{"status", msg(strangerJID, ".status"), []string{"Connection: connected for 5m0s\nUptime: 1h0m0s\nOutgoing: "}},
		{"backup not configured", msg(ownerJID, ".backup"), []string{"Backups are not configured."}},
		{"reconnect", msg(ownerJID, ".reconnect"), []string{"Reconnecting to WhatsApp…"}},
		{"groups only in private", msg(strangerJID, ".grouponly"), []string{".grouponly works only in groups."}},
		{"groups only in group", group(strangerJID, ".grouponly"), []string{"group ok"}},
		{"private only in group", group(strangerJID, ".dm"), []string{".dm works only in a private chat with me."}},
		{"command error, stranger", msg(strangerJID, ".fail"), []string{"Sorry, .fail failed. The error was logged."}},
		{"command error, owner", msg(ownerJID, ".fail"), []string{".fail failed: disk on fire"}},
		{"panic", msg(strangerJID, ".boom"), []string{"Sorry, .boom failed."}},
		{"timeout", msg(ownerJID, ".slow"), []string{".slow failed: context deadline exceeded"}},
		{"two replies", msg(strangerJID, ".twice a b"), []string{"a", "b"}},
		{"from me ignored", func() Message { m := msg(ownerJID, ".ping"); m.FromMe = true; return m }(), nil},
		{"reaction ignored", func() Message { m := msg(strangerJID, ".ping"); m.Kind = "reaction"; return m }(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			reconnects := 0
			f := newFixture(t, store.SQLite, func(o *Options) {
				o.Status = func() supervisor.Status {
					return supervisor.Status{State: supervisor.Connected, Since: o.Now().Add(-5 * time.Minute)}
				}
				o.Reconnect = func() { reconnects++ }
				if tt.name == "timeout" {
					// Short only where the timeout is under test: the
					// others' replies are database writes that a loaded
					// machine may not finish in 50 ms.
					o.CommandTimeout = 50 * time.Millisecond
				}
			})
			registerTestCommands(t, f.bot)
			got := f.deliver(t, tt.in)
			if got.State != Handled {
				t.Errorf("state = %s, want handled", got.State)
			}
			replies := f.replies(t, tt.in.Chat)
			if len(replies) != len(tt.want) {
				t.Fatalf("replies = %q, want %d matching %q", replies, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(replies[i], w) {
					t.Errorf("reply %d = %q, want it to contain %q", i, replies[i], w)
				}
			}
			if strings.Contains(tt.in.Text, ".reconnect") && tt.in.Sender == ownerJID && reconnects != 1 {
				t.Errorf("reconnects = %d", reconnects)
			}
		})
	}
}

func registerTestCommands(t testing.TB, b *Bot) {
	t.Helper()
	for _, c := range []Command{
		{Name: "grouponly", Scope: GroupsOnly, Run: func(ctx context.Context, c *Context) error { return c.Reply(ctx, "group ok") }},
		{Name: "dm", Scope: PrivateOnly, Run: func(ctx context.Context, c *Context) error { return c.Reply(ctx, "dm ok") }},
		{Name: "fail", Run: func(context.Context, *Context) error { return errors.New("disk on fire") }},
		{Name: "slow", Run: func(ctx context.Context, c *Context) error { <-ctx.Done(); return ctx.Err() }},
		{Name: "boom", Run: func(context.Context, *Context) error { panic("kaboom") }},
		{Name: "twice", Run: func(ctx context.Context, c *Context) error {
			for _, a := range c.Args {
				if err := c.Reply(ctx, a); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		if err := b.Register(c); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRegister(t *testing.T) {
	f := newFixture(t, store.SQLite, nil)
	run := func(context.Context, *Context) error { return nil }
	tests := []struct {
		cmd  Command
		want error
	}{
		{Command{Name: "Echo", Aliases: []string{"say"}, Run: run}, nil},
		{Command{Name: "echo", Run: run}, ErrDuplicate},
		{Command{Name: "other", Aliases: []string{"SAY"}, Run: run}, ErrDuplicate},
		{Command{Name: "ping", Run: run}, ErrDuplicate},
		{Command{Name: "", Run: run}, errAny},
		{Command{Name: "two words", Run: run}, errAny},
		{Command{Name: "norun"}, errAny},
	}
	for _, tt := range tests {
		err := f.bot.Register(tt.cmd)
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("Register(%q) = %v", tt.cmd.Name, err)
		case tt.want == errAny && err == nil:
			t.Errorf("Register(%q) succeeded", tt.cmd.Name)
		case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
			t.Errorf("Register(%q) = %v, want %v", tt.cmd.Name, err, tt.want)
		}
	}
	if _, ok := f.bot.lookup("say"); !ok {
		t.Error("alias say not registered")
	}
}

var errAny = errors.New("any error")

// A panicking command is answered and the worker goes on with the next
// messages of the chat under Run.
func TestPanicKeepsWorkerRunning(t *testing.T) {
	f := newFixture(t, store.SQLite, func(o *Options) { o.PollInterval = 10 * time.Millisecond })
	registerTestCommands(t, f.bot)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.bot.Run(ctx) }()
	defer func() { cancel(); <-done }()

	for _, text := range []string{".boom", ".ping", ".boom", ".twice ok"} {
		m := msg(strangerJID, text)
		m.SentAt, m.ReceivedAt = f.clock.Now(), f.clock.Now()
		if _, err := f.bot.Store(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, "four replies", func() bool { return len(f.replies(t, strangerJID)) == 4 })
	got := f.replies(t, strangerJID)
	want := []string{"Sorry, .boom failed.", "Pong!", "Sorry, .boom failed.", "ok"}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("reply %d = %q, want %q (in order)", i, got[i], want[i])
		}
	}
	testkit.WaitFor(t, "inbox drained", func() bool {
		d, err := f.bot.InboxDepths(ctx)
		return err == nil && d[Handled] == 4
	})
	if err := f.bot.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

// A crash between queuing the reply and marking the message handled
// handles it again after the restart, and the outgoing queue still holds one reply.
func TestRehandlingSendsOneReply(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			var wh *webhook.Client
			f := newFixture(t, kind, func(o *Options) {
				var err error
				wh, err = webhook.New(o.DB, kind, webhook.Options{URL: "http://127.0.0.1:1/hook", Session: o.Session, Now: o.Now})
				if err != nil {
					t.Fatal(err)
				}
				o.Webhook = wh
			})
			ctx := context.Background()
			crash := errors.New("crash before mark")
			f.bot.failMark = func() error { return crash }
			m := f.deliver(t, msg(strangerJID, ".ping"))
			if m.State != Pending || m.Attempts != 1 {
				t.Fatalf("after the crash: state %s attempts %d, want pending 1", m.State, m.Attempts)
			}
			if n := len(f.replies(t, strangerJID)); n != 1 {
				t.Fatalf("replies after the crash = %d, want 1", n)
			}

			// "Restart": a new bot on the same database handles it again.
			f.clock.Advance(time.Hour)
			b2 := New(f.bot.opts)
			b2.handleDue(ctx)
			m2, _, err := b2.Get(ctx, m.Chat, m.MsgID)
			if err != nil || m2.State != Handled {
				t.Fatalf("after the restart: %+v %v", m2, err)
			}
			all, err := f.q.List(ctx, outgoing.Filter{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 1 || all[0].IdempotencyKey != "reply:"+m.Chat+":"+m.MsgID {
				t.Fatalf("outgoing = %+v, want one reply keyed by the message", all)
			}
			if d, err := wh.Depths(ctx); err != nil || d[webhook.Pending] != 1 {
				t.Fatalf("webhook events = %v, %v; want 1", d, err)
			}
			ev, ok, err := wh.Get(ctx, messageEventID("s", m))
			if err != nil || !ok || ev.Kind != webhook.KindMessageReceived || !strings.Contains(ev.Body, `"text":".ping"`) {
				t.Fatalf("webhook event %+v %v %v", ev, ok, err)
			}

			// WhatsApp delivering the message again changes nothing.
			if created, err := b2.Store(ctx, m); err != nil || created {
				t.Fatalf("redelivery: created %v err %v", created, err)
			}
			b2.handleDue(ctx)
			if n := len(f.replies(t, strangerJID)); n != 1 {
				t.Fatalf("replies after a redelivery = %d, want 1", n)
			}
		})
	}
}

// Storage errors are retried with backoff and give up after MaxAttempts.
func TestFailingHandlingGivesUp(t *testing.T) {
	f := newFixture(t, store.SQLite, func(o *Options) { o.MaxAttempts = 3 })
	f.bot.failMark = func() error { return errors.New("disk full") }
	m := f.deliver(t, msg(strangerJID, "just text"))
	for i := 0; i < 5; i++ {
		f.clock.Advance(time.Hour)
		f.bot.handleDue(context.Background())
	}
	got, _, _ := f.bot.Get(context.Background(), m.Chat, m.MsgID)
	if got.State != Dead || got.Attempts != 3 {
		t.Fatalf("state %s attempts %d, want dead 3", got.State, got.Attempts)
	}
	f.bot.failMark = nil
	if n, err := f.bot.RetryDead(context.Background()); err != nil || n != 1 {
		t.Fatalf("RetryDead = %d, %v", n, err)
	}
	f.bot.handleDue(context.Background())
	if got, _, _ := f.bot.Get(context.Background(), m.Chat, m.MsgID); got.State != Handled {
		t.Fatalf("state after retry %s", got.State)
	}
}

// The connected notice goes to every owner once per process start.
func TestNotifyConnected(t *testing.T) {
	f := newFixture(t, store.SQLite, func(o *Options) { o.Owners = []string{"4915100000001", "+1 555 000 0009"} })
	ctx := context.Background()
	for range 3 {
		if err := f.bot.NotifyConnected(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, chat := range []string{ownerJID, "15550000009@s.whatsapp.net"} {
		r := f.replies(t, chat)
		if len(r) != 1 || !strings.Contains(r[0], "testbot v1 connected.\nSession: s\nOutgoing queue: ") {
			t.Errorf("notices to %s = %q", chat, r)
		}
	}
	opts := f.bot.opts
	opts.StartID = "start2"
	if err := New(opts).NotifyConnected(ctx); err != nil {
		t.Fatal(err)
	}
	if r := f.replies(t, ownerJID); len(r) != 2 {
		t.Errorf("a new start sent %d notices in all, want 2", len(r))
	}
}

// A message the previous holder of the account was handling when it died
// is handled by the next holder as soon as its worker starts, not after the
// dead process's lease (minutes) runs out.
func TestNewHolderTakesBackADeadHoldersMessages(t *testing.T) {
	for _, kind := range testkit.Engines {
		t.Run(string(kind), func(t *testing.T) {
			f := newFixture(t, kind, nil)
			ctx := context.Background()
			m := msg(strangerJID, ".ping")
			m.SentAt, m.ReceivedAt = f.clock.Now(), f.clock.Now()
			if _, err := f.bot.Store(ctx, m); err != nil {
				t.Fatal(err)
			}
			// The dead process claimed it and never finished.
			if j, err := f.bot.jobs.Claim(ctx, 1, "dead-process", time.Hour); err != nil || len(j) != 1 {
				t.Fatalf("claim: %v %v", j, err)
			}
			next := New(f.bot.opts)
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- next.Run(runCtx) }()
			defer func() { cancel(); <-done }()
			testkit.WaitFor(t, "the next holder to handle it", func() bool {
				got, _, err := next.Get(ctx, m.Chat, m.MsgID)
				return err == nil && got.State == Handled
			})
			got, _, _ := next.Get(ctx, m.Chat, m.MsgID)
			if got.Attempts != 2 || len(f.replies(t, strangerJID)) != 1 {
				t.Fatalf("message %+v, %d replies; want handled at its second attempt, one reply", got, len(f.replies(t, strangerJID)))
			}
		})
	}
}

// An undecryptable message's line says where to read what it means.
func TestUndecryptableLinePointsToTheGuide(t *testing.T) {
	logs := testkit.NewLogs()
	f := newFixture(t, store.SQLite, func(o *Options) { o.Logger = logs.Logger() })
	sender := types.NewJID("15550000002", types.DefaultUserServer)
	f.bot.reportUndecryptable(&events.UndecryptableMessage{Info: types.MessageInfo{
		MessageSource: types.MessageSource{Chat: sender, Sender: sender}, ID: "3EB0ABC",
	}})
	lines := logs.Lines(slog.LevelWarn, "could not be decrypted")
	if len(lines) != 1 || lines[0].Attrs["help"] != troubleshoot.WaitingForMessage.URL() {
		t.Fatalf("lines %+v; want one with help=%s", lines, troubleshoot.WaitingForMessage.URL())
	}
}
