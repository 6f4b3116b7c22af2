package bot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/blacksky-bot/blacksky/internal/outgoing"
)

// NotifyConnected queues the "connected" notice to every owner. Its
// idempotency key names this process start, so the owners get it once per
// start however often it is called. Run calls it on the first connection.
func (b *Bot) NotifyConnected(ctx context.Context) error {
	if len(b.owners) == 0 {
		return nil
	}
	text := b.connectedText(ctx)
	var errs []error
	for _, owner := range b.opts.Owners {
		o := digits(owner)
		if o == "" {
			continue
		}
		key := "connected:" + b.opts.Session + ":" + b.opts.StartID + ":" + o
		if _, _, err := b.opts.Queue.Enqueue(ctx, outgoing.Request{To: o, Text: text, IdempotencyKey: key}); err != nil {
			errs = append(errs, fmt.Errorf("queue connected notice for %s: %w", o, err))
		}
	}
	return errors.Join(errs...)
}

// notifyOnce sends the connected notice unless it already went out for
// this start; a failure is retried at the next connection.
func (b *Bot) notifyOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := b.NotifyConnected(ctx); err != nil {
		b.log.Error("bot: queue the connected notice to the owners", "err", err)
		return
	}
	if b.notified.CompareAndSwap(false, true) && len(b.owners) > 0 {
		b.log.Info("bot: connected notice queued for the owners", "owners", len(b.owners))
	}
}

func (b *Bot) connectedText(ctx context.Context) string {
	backlog := "unknown"
	if d, err := b.opts.Queue.Depths(ctx); err == nil {
		backlog = fmt.Sprintf("%d waiting, %d dead", d[outgoing.Pending]+d[outgoing.Sending], d[outgoing.Dead])
	}
	version := b.opts.Version
	if version == "" {
		version = "dev"
	}
	return fmt.Sprintf("✅ %s %s connected.\nSession: %s\nOutgoing queue: %s\nSend %smenu for commands.",
		b.opts.BotName, version, b.opts.Session, backlog, b.opts.Prefix)
}
