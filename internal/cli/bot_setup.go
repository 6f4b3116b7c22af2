package cli

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backup"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// newWebhook returns the webhook client, or nil when WEBHOOK_URL is unset.
func newWebhook(cfg *config.Config, st *store.Store, version string, log *slog.Logger) (*webhook.Client, error) {
	if cfg.WebhookURL == "" {
		return nil, nil
	}
	wh, err := webhook.New(st.DB(), st.Engine(), webhook.Options{
		URL: cfg.WebhookURL, Secret: cfg.WebhookSecret, Session: cfg.SessionID,
		MaxAttempts: cfg.WebhookMaxAttempts, Timeout: cfg.WebhookTimeout,
		UserAgent: "blacksky/" + version, Logger: log.With("component", "webhook"),
	})
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_URL: %w", err)
	}
	return wh, nil
}

// newBot builds the bot: incoming messages stored before they are
// acknowledged, the built-in commands, replies through the queue (the
// program's own commands are added by assemble). conn is read at call time: the bot exists before the
// connection.
func newBot(cfg *config.Config, st *store.Store, version string, q *outgoing.Queue, wh *webhook.Client, backups *backup.Manager,
	m *metrics.Metrics, conn connection, started time.Time, log *slog.Logger) *bot.Bot {
	b := bot.New(bot.Options{
		DB: st.DB(), Engine: st.Engine(), Session: cfg.SessionID, Prefix: cfg.Prefix, Owners: cfg.Owners,
		BotName: cfg.BotName, Version: version, Started: started, Queue: q, Webhook: wh, Metrics: m,
		Status: conn.Status,
		Reconnect: func() {
			if s := conn.Supervisor(); s != nil {
				s.Reconnect()
			}
		},
		Backup: func(ctx context.Context) (string, error) {
			if !cfg.BackupsEnabled() {
				return "", bot.ErrNotConfigured
			}
			res, err := backups.Backup(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%d copies at %s", len(res.Written), res.CreatedAt.Format(time.RFC3339)), nil
		},
		Logger: log.With("component", "bot"),
	})
	return b
}
