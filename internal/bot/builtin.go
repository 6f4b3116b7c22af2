package bot

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// registerBuiltins adds the commands every bot has.
func (b *Bot) registerBuiltins() {
	b.MustRegister(Command{Name: "menu", Aliases: []string{"help"}, Help: "list the commands", Run: b.cmdMenu})
	b.MustRegister(Command{Name: "ping", Help: "check that the bot answers, with the delay", Run: b.cmdPing})
	b.MustRegister(Command{Name: "status", Help: "connection, uptime, queues and memory", Run: b.cmdStatus})
	b.MustRegister(Command{Name: "queue", Usage: "[retry]", Help: "outgoing queue; retry puts dead messages back", OwnerOnly: true, Run: b.cmdQueue})
	b.MustRegister(Command{Name: "backup", Help: "take a backup now", OwnerOnly: true, Run: b.cmdBackup})
	b.MustRegister(Command{Name: "reconnect", Help: "drop the WhatsApp connection and connect again", OwnerOnly: true, Run: b.cmdReconnect})
}

func (b *Bot) cmdMenu(ctx context.Context, c *Context) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%s* commands:", b.opts.BotName)
	for _, cmd := range b.Commands() {
		if (cmd.OwnerOnly && !c.IsOwner) || !cmd.allowed(c.Message.IsGroup) {
			continue
		}
		fmt.Fprintf(&sb, "\n%s%s", b.opts.Prefix, cmd.Name)
		if cmd.Usage != "" {
			sb.WriteString(" " + cmd.Usage)
		}
		for _, a := range cmd.Aliases {
			fmt.Fprintf(&sb, " (%s%s)", b.opts.Prefix, a)
		}
		if cmd.Help != "" {
			sb.WriteString(" — " + cmd.Help)
		}
		if cmd.OwnerOnly {
			sb.WriteString(" (owner)")
		}
	}
	return c.Reply(ctx, sb.String())
}

func (b *Bot) cmdPing(ctx context.Context, c *Context) error {
	now := b.opts.Now()
	rtt := now.Sub(c.Message.SentAt).Round(time.Millisecond)
	inBot := now.Sub(c.Message.ReceivedAt).Round(time.Millisecond)
	return c.Reply(ctx, fmt.Sprintf("🏓 Pong! %s since you sent it (WhatsApp times are whole seconds); %s inside the bot.",
		max(rtt, 0), max(inBot, 0)))
}

func (b *Bot) cmdStatus(ctx context.Context, c *Context) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "*%s* %s\n", b.opts.BotName, b.opts.Version)
	if b.opts.Status != nil {
		st := b.opts.Status()
		fmt.Fprintf(&sb, "Connection: %s", st.State)
		if !st.Since.IsZero() {
			fmt.Fprintf(&sb, " for %s", b.opts.Now().Sub(st.Since).Round(time.Second))
		}
		sb.WriteString("\n")
	}
	fmt.Fprintf(&sb, "Uptime: %s\n", b.opts.Now().Sub(b.opts.Started).Round(time.Second))
	if d, err := b.opts.Queue.Depths(ctx); err == nil {
		fmt.Fprintf(&sb, "Outgoing: %s\n", outgoingSummary(d))
	} else {
		sb.WriteString("Outgoing: unavailable\n")
	}
	if d, err := b.InboxDepths(ctx); err == nil {
		fmt.Fprintf(&sb, "Incoming: %d waiting, %d dead\n", waiting(d), d[Dead])
	}
	if b.opts.Webhook != nil {
		if d, err := b.opts.Webhook.Depths(ctx); err == nil {
			fmt.Fprintf(&sb, "Webhook: %d pending, %d dead\n", d[webhook.Pending], d[webhook.Dead])
		}
	}
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	fmt.Fprintf(&sb, "Memory: %s heap, %s from the OS, %d goroutines", mib(mem.HeapAlloc), mib(mem.Sys), runtime.NumGoroutine())
	return c.Reply(ctx, sb.String())
}

// outgoingSummary is the outgoing queue's depths in a line: the sent count
// is every message WhatsApp took, and what its receipts said follows.
func outgoingSummary(d map[outgoing.State]int) string {
	delivered := d[outgoing.Delivered] + d[outgoing.Read] + d[outgoing.Played]
	sent := d[outgoing.Sent] + d[outgoing.Undelivered] + delivered
	return fmt.Sprintf("%d pending, %d sending, %d sent (%d delivered, %d read, %d undelivered), %d dead",
		d[outgoing.Pending], d[outgoing.Sending], sent, delivered, d[outgoing.Read], d[outgoing.Undelivered], d[outgoing.Dead])
}

// waiting is how many other incoming messages wait: the one being handled
// is pending until it is done.
func waiting(d map[MessageState]int) int { return max(d[Pending]-1, 0) }

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func (b *Bot) cmdQueue(ctx context.Context, c *Context) error {
	if len(c.Args) > 0 {
		if strings.ToLower(c.Args[0]) != "retry" {
			return c.Reply(ctx, fmt.Sprintf("Usage: %squeue or %squeue retry", c.Prefix, c.Prefix))
		}
		return b.retryAll(ctx, c)
	}
	d, err := b.opts.Queue.Depths(ctx)
	if err != nil {
		return err
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "Outgoing: %s", outgoingSummary(d))
	if age, err := b.opts.Queue.OldestPendingAge(ctx); err == nil && age > 0 {
		fmt.Fprintf(&sb, "\nOldest waiting: %s", age.Round(time.Second))
	}
	if d[outgoing.Dead] > 0 {
		dead, err := b.opts.Queue.List(ctx, outgoing.Filter{State: outgoing.Dead, Limit: 5})
		if err != nil {
			return err
		}
		sb.WriteString("\nLatest dead:")
		for _, m := range dead {
			fmt.Fprintf(&sb, "\n#%d to %s: %s", m.ID, m.To, shorten(m.LastError, 80))
		}
	}
	in, err := b.InboxDepths(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(&sb, "\nIncoming: %d waiting, %d dead", waiting(in), in[Dead])
	dead := d[outgoing.Dead] + in[Dead]
	if b.opts.Webhook != nil {
		w, err := b.opts.Webhook.Depths(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(&sb, "\nWebhook: %d pending, %d dead", w[webhook.Pending], w[webhook.Dead])
		dead += w[webhook.Dead]
	}
	if dead > 0 {
		fmt.Fprintf(&sb, "\nSend %squeue retry to retry everything dead.", c.Prefix)
	}
	return c.Reply(ctx, sb.String())
}

// retryAll puts dead outgoing messages, dead incoming ones and dead
// webhook events back in their queues.
func (b *Bot) retryAll(ctx context.Context, c *Context) error {
	out, err := b.opts.Queue.RetryAllDead(ctx)
	if err != nil {
		return err
	}
	in, err := b.RetryDead(ctx)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("Retrying %d dead outgoing and %d dead incoming message(s)", out, in)
	if b.opts.Webhook != nil {
		w, err := b.opts.Webhook.RetryDead(ctx)
		if err != nil {
			return err
		}
		text += fmt.Sprintf(" and %d dead webhook event(s)", w)
	}
	return c.Reply(ctx, text+".")
}

func (b *Bot) cmdBackup(ctx context.Context, c *Context) error {
	if b.opts.Backup == nil {
		return c.Reply(ctx, "Backups are not configured.")
	}
	desc, err := b.opts.Backup(ctx)
	if errors.Is(err, ErrNotConfigured) {
		return c.Reply(ctx, "Backups are not configured.")
	}
	if err != nil {
		return err
	}
	if desc == "" {
		desc = "done"
	}
	return c.Reply(ctx, "Backup taken: "+desc)
}

func (b *Bot) cmdReconnect(ctx context.Context, c *Context) error {
	if b.opts.Reconnect == nil {
		return c.Reply(ctx, "Reconnecting is not available here.")
	}
	// The reply is queued first: it is sent once the new connection is up.
	if err := c.Reply(ctx, "Reconnecting to WhatsApp…"); err != nil {
		return err
	}
	b.opts.Reconnect()
	return nil
}
