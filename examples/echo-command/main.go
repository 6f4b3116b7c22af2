// Command echo-command shows how to write your own blacksky command: it
// registers ".echo <text>" (and its alias ".say") on a bot, then proves it
// works without a phone: an in-process WhatsApp sandbox, the real whatsmeow
// client paired with it, the durable outgoing delivering replies, and a
// simulated contact sending ".echo hello world".
//
//	go run ./examples/echo-command
//
// In your own bot only echoCommand and the Register call matter; the rest
// is what cmd/blacksky already does for you.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// echoCommand answers ".echo <text>" with the text. Commands get the parsed
// call (c.Name, c.Args split on whitespace, c.Raw with the original
// spacing), the stored message (c.Message: chat, sender, time), and whether
// the sender is an owner (c.IsOwner). c.Reply queues an answer in the
// durable outgoing; a handling repeated after a crash does not send it twice.
func echoCommand() bot.Command {
	return bot.Command{
		Name:    "echo",
		Aliases: []string{"say"},
		Usage:   "<text>",
		Help:    "repeat the text back",
		Scope:   bot.Anywhere, // or bot.GroupsOnly, bot.PrivateOnly
		// OwnerOnly: true would refuse it to everyone but OWNER_NUMBER.
		Run: func(ctx context.Context, c *bot.Context) error {
			if c.Raw == "" {
				return c.Reply(ctx, fmt.Sprintf("Usage: %secho <text>", c.Prefix))
			}
			// A returned error or a panic is logged and answered with an
			// error reply; the bot keeps running.
			return c.Reply(ctx, c.Raw)
		},
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "echo-command:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	log := slog.New(slog.DiscardHandler)
	logging.InstallSignalLogger(log)
	dir, err := os.MkdirTemp("", "blacksky-echo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv, err := sandbox.New(sandbox.Options{})
	if err == nil {
		err = srv.Start(ctx)
	}
	if err != nil {
		return fmt.Errorf("start sandbox: %w", err)
	}
	defer srv.Close()
	friend, err := srv.AddContact("15550000002")
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, store.Options{SQLitePath: filepath.Join(dir, "blacksky.db")})
	if err == nil {
		err = st.Migrate(ctx)
	}
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer st.Close()

	// The bot: built-in commands plus ours.
	q := outgoing.New(st.DB(), st.Engine(), outgoing.Options{Session: "echo"})
	b := bot.New(bot.Options{DB: st.DB(), Engine: st.Engine(), Session: "echo", BotName: "echo-bot", Queue: q, Logger: log})
	if err := b.Register(echoCommand()); err != nil {
		return err
	}

	// The connection, with the bot storing each message before WhatsApp is acknowledged.
	trust := srv.Trust()
	sup, err := supervisor.New(ctx, supervisor.Options{
		Store: st, SessionID: "echo", Logger: log,
		Configure: func(cli *whatsmeow.Client) error {
			if err := trust.Apply(cli); err != nil {
				return err
			}
			return b.Configure(cli)
		},
	})
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 3)
	go func() { sup.Run(runCtx); done <- struct{}{} }()
	go func() {
		q.Run(runCtx, &outgoing.WhatsAppSender{Client: sup.Client}, outgoing.SupervisorGate{Supervisor: sup})
		done <- struct{}{}
	}()
	go func() { b.Run(runCtx); done <- struct{}{} }()
	defer func() {
		srv.Close()
		stop()
		for range 3 {
			<-done
		}
	}()

	if err := sup.WaitFor(ctx, func(_ supervisor.Status, p supervisor.Pairing) bool { return p.QR != "" }); err != nil {
		return fmt.Errorf("wait for the QR code: %w", err)
	}
	if err := srv.ScanQR(ctx, sup.Pairing().QR); err != nil {
		return err
	}
	if err := sup.WaitFor(ctx, func(s supervisor.Status, _ supervisor.Pairing) bool { return s.State == supervisor.Connected }); err != nil {
		return err
	}
	fmt.Println("bot paired with the sandbox and connected")

	for _, text := range []string{".echo hello   world", ".SAY hi", ".menu"} {
		before := len(friend.Inbox())
		if _, err := friend.Send(ctx, text); err != nil {
			return err
		}
		fmt.Printf("contact  > %s\n", text)
		if err := srv.WaitFor(ctx, func() bool { return len(friend.Inbox()) > before }); err != nil {
			return fmt.Errorf("no reply to %q: %w", text, err)
		}
		reply := friend.Inbox()[before].Text
		fmt.Printf("echo-bot > %s\n", strings.ReplaceAll(reply, "\n", "\n           "))
	}
	return nil
}
