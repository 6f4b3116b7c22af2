package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// demo is one narrated run of the bot against an in-process sandbox.
type demo struct {
	out     io.Writer
	start   time.Time
	srv     *sandbox.Server
	sup     *supervisor.Supervisor
	inbound chan string
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.2fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func demoCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	verbose := fs.Bool("verbose", false, "also print the bot's and the sandbox's logs")
	timeout := fs.Duration("timeout", time.Minute, "give up after this long")
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	logOut := io.Discard
	if *verbose {
		logOut = env.stderr
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	d := &demo{out: env.stdout, start: time.Now(), inbound: make(chan string, 8)}
	if err := d.run(ctx, logging.New(logOut, "text", slog.LevelInfo)); err != nil {
		d.say("demo failed: %v", err)
		return exitFailure
	}
	d.say("demo finished: paired, delivered, survived a dropped connection, received a reply")
	return exitOK
}

func (d *demo) run(ctx context.Context, log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "blacksky-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d.say("data directory %s (deleted at the end)", dir)

	d.srv, err = sandbox.New(sandbox.Options{Logger: log.With("component", "sandbox")})
	if err == nil {
		err = d.srv.Start(ctx)
	}
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	defer d.srv.Close()
	d.say("WhatsApp sandbox listening on %s; the bot talks to it through the real whatsmeow client (TLS, websocket, noise, Signal)", d.srv.Addr())

	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(dir, "blacksky.db"), Logger: log})
	if err == nil {
		err = st.Migrate(ctx)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	d.sup, err = supervisor.New(ctx, supervisor.Options{
		Store: st, SessionID: "demo", Logger: log,
		Backoff:   backoff.Policy{Base: 200 * time.Millisecond, Max: 2 * time.Second},
		Configure: d.srv.Trust().Apply,
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.sup.Run(runCtx) }()
	defer func() { stop(); <-done }()

	for _, step := range []func(context.Context) error{d.pair, d.send, d.drop, d.receive} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) pair(ctx context.Context) error {
	d.say("bot has no session: waiting for a QR code")
	if err := d.sup.WaitFor(ctx, func(_ supervisor.Status, p supervisor.Pairing) bool { return p.QR != "" }); err != nil {
		return err
	}
	d.say("QR code shown; the simulated phone scans it")
	if err := d.srv.ScanQR(ctx, d.sup.Pairing().QR); err != nil {
		return fmt.Errorf("scan QR: %w", err)
	}
	if err := d.waitState(ctx, supervisor.Connected); err != nil {
		return err
	}
	d.say("paired as %s and logged in", d.sup.Pairing().Account)
	d.sup.Client().AddEventHandler(func(evt any) {
		if m, ok := evt.(*events.Message); ok {
			select {
			case d.inbound <- m.Message.GetConversation():
			default:
			}
		}
	})
	return nil
}

const demoContact = "15550000002"

func (d *demo) send(ctx context.Context) error {
	contact, err := d.srv.AddContact(demoContact)
	if err != nil {
		return err
	}
	text := "Hello from blacksky!"
	d.say("sending %q to contact +%s", text, demoContact)
	sent := time.Now()
	_, err = d.sup.Client().SendMessage(ctx, contact.JID(), &waE2E.Message{Conversation: proto.String(text)})
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	err = d.srv.WaitFor(ctx, func() bool { return len(contact.Inbox()) > 0 })
	if err != nil {
		return fmt.Errorf("wait for delivery: %w", err)
	}
	got := contact.Inbox()[0]
	d.say("server acked and contact decrypted message %s (%s): %q, %s after sending", got.ID, got.Type, got.Text, time.Since(sent).Round(time.Millisecond))
	return nil
}

func (d *demo) drop(ctx context.Context) error {
	d.say("sandbox drops the connection")
	dropped := time.Now()
	if err := d.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
		return err
	}
	// A connection that had logged in is redialled at once: wait for a
	// login newer than the drop.
	err := d.sup.WaitFor(ctx, func(st supervisor.Status, _ supervisor.Pairing) bool {
		return st.State == supervisor.Connected && st.Since.After(dropped)
	})
	if err != nil {
		return fmt.Errorf("waiting for the reconnect (now %s: %s): %w", d.sup.Status().State, d.sup.Status().Reason, err)
	}
	d.say("reconnected %s after the drop, same session, no pairing", time.Since(dropped).Round(time.Millisecond))
	return nil
}

func (d *demo) receive(ctx context.Context) error {
	text := "Hi bot, glad you're back"
	d.say("contact +%s sends %q", demoContact, text)
	if _, err := d.srv.Contact(demoContact).Send(ctx, text); err != nil {
		return fmt.Errorf("contact send: %w", err)
	}
	select {
	case got := <-d.inbound:
		d.say("bot received %q", got)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("bot never received the contact's message: %w", ctx.Err())
	}
}

func (d *demo) waitState(ctx context.Context, want supervisor.State) error {
	err := d.sup.WaitFor(ctx, func(st supervisor.Status, _ supervisor.Pairing) bool { return st.State == want })
	if err != nil {
		return fmt.Errorf("waiting for state %s (now %s: %s): %w", want, d.sup.Status().State, d.sup.Status().Reason, err)
	}
	return nil
}
