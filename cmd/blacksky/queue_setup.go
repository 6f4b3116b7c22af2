package main

import (
	"context"
	"log/slog"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/contacts"
	"github.com/blacksky-bot/blacksky/internal/outbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// newQueue opens the account's outbox with the configured limits; with a
// webhook, every message that becomes sent or dead is reported to it.
// Under WhatsApp's reach-out lock it sends only to chats that have written
// (the inbox knows them) and alerts the owners once per lock.
func newQueue(cfg *config.Config, st *store.Store, wh *webhook.Client, log *slog.Logger) *outbox.Queue {
	var q *outbox.Queue
	opts := outbox.Options{
		Session:       cfg.SessionID,
		MaxAttempts:   cfg.NotifyMaxAttempts,
		TTL:           cfg.NotifyTTL,
		MaxPending:    cfg.NotifyMaxPending,
		Backoff:       backoff.Policy{Base: cfg.NotifyRetryBase, Max: cfg.NotifyRetryMax},
		Retention:     cfg.NotifyRetention,
		RatePerMinute: cfg.SendRatePerMinute,
		ChatGap:       cfg.SendChatGap,
		SendTimeout:   cfg.NotifySendTimeout,
		// A claim outlives its longest send, so it never expires mid-send.
		Lease: 2 * cfg.NotifySendTimeout,
		// Leaves room in Heroku's 30 s for HTTP, the connection and the database.
		ShutdownGrace: 5 * time.Second,
		Logger:        log.With("component", "outbox"),
		HasWritten:    bot.HasWritten(st.DB(), cfg.SessionID),
		Alert:         func(ctx context.Context, text string) { alertOwners(ctx, q, cfg.Owners, text, log) },
	}
	if wh != nil {
		opts.Settled = wh.OutboxSettled
	}
	q = outbox.New(st.DB(), st.Kind(), opts)
	return q
}

// alertOwners queues text to every owner.
func alertOwners(ctx context.Context, q *outbox.Queue, owners []string, text string, log *slog.Logger) {
	for _, owner := range owners {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if _, _, err := q.Enqueue(ctx, outbox.Request{To: owner, Text: text}); err != nil {
			log.Error("queue owner alert", "owner", owner, "err", err)
		}
		cancel()
	}
}

// withQueue makes the connection deliver the queue: owner alerts become
// queued messages, the queue runs while this process holds the account, and
// every client answers retry receipts from the queue's sent messages.
//
// dir answers whether a phone-number recipient has an account before it is
// sent to (a number without one goes to dead, "not on WhatsApp").
func withQueue(opts *supervisor.Options, q *outbox.Queue, dir *contacts.Directory, owners []string, log *slog.Logger) func(context.Context, *supervisor.Supervisor) {
	opts.Alert = func(ctx context.Context, text string) { alertOwners(ctx, q, owners, text, log) }
	// Recipients stuck on "waiting for this message" ask again; the answer
	// must survive our restarts, so it comes from the database. WhatsApp's
	// notices of the reach-out lock go to the queue, which holds sends by it.
	chainConfigure(opts, func(cli *whatsmeow.Client) error {
		cli.GetMessageForRetry = outbox.RetryMessageFunc(q)
		cli.AddEventHandler(q.HandleWhatsAppEvent)
		return nil
	})
	return func(ctx context.Context, sup *supervisor.Supervisor) {
		// Holding the account lease, nobody else sends for this account:
		// claims left in the table are a dead holder's, retried now rather
		// than after their lease expires.
		if n, err := q.ReclaimAll(ctx); err != nil {
			log.Error("reclaim messages of a previous holder", "err", err)
		} else if n > 0 {
			log.Warn("retrying messages a previous process was sending when it stopped", "count", n)
		}
		sender := &outbox.WhatsAppSender{Client: sup.Client, Contacts: dir, Acks: sup}
		if err := q.Run(ctx, sender, outbox.SupervisorGate{Supervisor: sup}); err != nil {
			log.Error("outbox stopped", "err", err)
		}
	}
}
