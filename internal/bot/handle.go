package bot

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"unicode/utf8"

	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// Context is what a command sees of the message that called it.
type Context struct {
	// Message is the incoming message.
	Message Message
	// Command is the command called.
	Command Command
	// Invocation is the parsed call: name as typed, arguments, raw rest.
	Invocation
	// Prefix is the command prefix in use.
	Prefix string
	// IsOwner reports whether the sender is one of the owners.
	IsOwner bool
	// Bot is the bot handling the message.
	Bot *Bot

	replies  int
	storeErr error // a reply the outgoing queue could not store, retried later
}

// Reply queues text for the message's chat. Each reply of one handling gets
// an idempotency key derived from the message ID and its position, so a
// message handled again after a crash queues no second copy.
func (c *Context) Reply(ctx context.Context, text string) error {
	key := replyKey(c.Message, c.replies)
	c.replies++
	_, created, err := c.Bot.opts.Queue.Enqueue(ctx, outgoing.Request{To: c.Message.Chat, Text: text, IdempotencyKey: key})
	if err != nil {
		if !errors.Is(err, outgoing.ErrInvalid) && c.storeErr == nil {
			c.storeErr = err
		}
		return fmt.Errorf("queue reply: %w", err)
	}
	if !created {
		c.Bot.log.Info("bot: reply was already queued by an earlier handling", "chat", c.Message.Chat, "id", c.Message.MsgID)
	}
	return nil
}

// replyKey is the outgoing queue idempotency key of the n-th reply to m.
func replyKey(m Message, n int) string {
	k := "reply:" + m.Chat + ":" + m.MsgID
	if n > 0 {
		k += ":" + strconv.Itoa(n)
	}
	if len(k) > outgoing.MaxIdempotencyKeyBytes {
		k = k[:outgoing.MaxIdempotencyKeyBytes]
	}
	return k
}

// process handles one stored message, claimed as j, and marks it handled;
// an error means a storage step failed and the message stays pending.
func (b *Bot) process(ctx context.Context, j jobs.Job, m Message) error {
	if err := b.route(ctx, m); err != nil {
		return err
	}
	return b.complete(ctx, j, m)
}

// route runs the command m calls, if any, and returns only storage errors.
func (b *Bot) route(ctx context.Context, m Message) error {
	if m.FromMe && !b.opts.HandleFromMe {
		return nil
	}
	if m.Kind != "text" && m.Kind != "image" && m.Kind != "video" && m.Kind != "document" {
		return nil
	}
	inv, ok := Parse(b.opts.Prefix, m.Text)
	if !ok {
		return nil
	}
	c := &Context{Message: m, Invocation: inv, Prefix: b.opts.Prefix, IsOwner: b.isOwner(m), Bot: b}
	cmd, found := b.lookup(inv.Name)
	switch {
	case !found:
		b.log.Info("bot: unknown command", "chat", m.Chat, "id", m.MsgID, "sender", m.Sender)
		c.Reply(ctx, fmt.Sprintf("Unknown command %s%s — send %smenu", b.opts.Prefix, shorten(inv.Name, 32), b.opts.Prefix))
	case cmd.OwnerOnly && !c.IsOwner:
		b.log.Info("bot: owner command refused", "command", cmd.Name, "chat", m.Chat, "id", m.MsgID, "sender", m.Sender)
		c.Reply(ctx, fmt.Sprintf("Sorry, %s%s is only for the bot's owner.", b.opts.Prefix, cmd.Name))
	case !cmd.allowed(m.IsGroup):
		where := "in groups"
		if cmd.Scope == PrivateOnly {
			where = "in a private chat with me"
		}
		c.Reply(ctx, fmt.Sprintf("%s%s works only %s.", b.opts.Prefix, cmd.Name, where))
	default:
		c.Command = *cmd
		b.run(ctx, c)
	}
	return c.storeErr
}

// run calls the command, turning an error or a panic into an error reply.
func (b *Bot) run(ctx context.Context, c *Context) {
	b.log.Info("bot: command", "command", c.Command.Name, "chat", c.Message.Chat, "id", c.Message.MsgID, "sender", c.Message.Sender)
	err := func() (err error) {
		cmdCtx, cancel := context.WithTimeout(ctx, b.opts.CommandTimeout)
		defer cancel()
		defer func() {
			if r := recover(); r != nil {
				b.log.Error("bot: command panicked", "command", c.Command.Name, "id", c.Message.MsgID, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = errPanic
			}
		}()
		return c.Command.Run(cmdCtx, c)
	}()
	if err == nil || (c.storeErr != nil && errors.Is(err, c.storeErr)) {
		return
	}
	if err != errPanic {
		b.log.Warn("bot: command failed", "command", c.Command.Name, "id", c.Message.MsgID, "err", err)
	}
	text := fmt.Sprintf("Sorry, %s%s failed. The error was logged.", c.Prefix, c.Command.Name)
	if c.IsOwner && err != errPanic {
		text = fmt.Sprintf("%s%s failed: %v", c.Prefix, c.Command.Name, err)
	}
	// The error reply gets the handling's context, not the command's
	// deadline, which may be what the command ran into.
	c.Reply(ctx, text)
}

var errPanic = errors.New("command panicked")

// complete marks m handled and passes it to the webhook, in one transaction.
func (b *Bot) complete(ctx context.Context, j jobs.Job, m Message) error {
	err := b.jobs.Complete(ctx, j, func(tx *sql.Tx) error {
		if b.opts.Webhook != nil {
			if err := b.opts.Webhook.EnqueueID(ctx, tx, messageEventID(b.opts.Session, m), webhook.KindMessageReceived, m); err != nil {
				return err
			}
		}
		if b.failMark != nil {
			return b.failMark()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish message: %w", err)
	}
	if b.opts.Webhook != nil {
		b.opts.Webhook.Wake()
	}
	return nil
}

// shorten cuts s to n runes for echoing user input.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "…"
}
