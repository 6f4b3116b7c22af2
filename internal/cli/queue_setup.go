package cli

import (
	"cmp"
	"context"
	"log/slog"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// newQueue opens the account's outgoing with the configured limits; with a
// webhook, every state a message reaches (sent, each receipt, undelivered,
// dead) is reported to it.
// Under WhatsApp's reach-out lock it sends only to chats that have written
// (the inbox knows them) and alerts the owners once per lock.
func newQueue(cfg *config.Config, st *store.Store, wh *webhook.Client, log *slog.Logger) *outgoing.Queue {
	var q *outgoing.Queue
	opts := outgoing.Options{
		Session:       cfg.SessionID,
		MaxAttempts:   cfg.OutgoingMaxAttempts,
		TTL:           cfg.OutgoingTTL,
		MaxPending:    cfg.OutgoingMaxPending,
		Backoff:       backoff.Policy{Base: cfg.OutgoingRetryBase, Max: cfg.OutgoingRetryMax},
		Retention:     cfg.OutgoingRetention,
		RatePerMinute: cfg.SendRatePerMinute,
		ChatGap:       cfg.SendChatGap,
		SendTimeout:   cfg.OutgoingSendTimeout,
		// OUTGOING_DELIVERY_TIMEOUT=0 turns the watchdog off.
		DeliveryTimeout: cmp.Or(cfg.OutgoingDeliveryTimeout, -1),
		// A claim outlives its longest send, so it never expires mid-send.
		Lease: 2 * cfg.OutgoingSendTimeout,
		// Leaves room in Heroku's 30 s for HTTP, the connection and the
		// database (shutdown_budget.go).
		ShutdownGrace: outgoingShutdownGrace,
		Logger:        log, // the queue adds its component and session
		HasWritten:    bot.HasWritten(st.DB(), cfg.SessionID),
		Alert:         func(ctx context.Context, text string) { alertOwners(ctx, q, cfg.Owners, text, log) },
	}
	if wh != nil {
		opts.Settled = wh.OutgoingSettled
	}
	q = outgoing.New(st.DB(), st.Engine(), opts)
	return q
}

// alertOwners queues text to every owner.
func alertOwners(ctx context.Context, q *outgoing.Queue, owners []string, text string, log *slog.Logger) {
	for _, owner := range owners {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, _, err := q.Enqueue(ctx, outgoing.Request{To: owner, Text: text}); err != nil {
			log.Error("queue owner alert", "owner", owner, "err", err)
		}
		cancel()
	}
}
