package cli

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/backup"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/contacts"
	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// parts is one WhatsApp account assembled once from the configuration, for
// every entry point that connects it (blacksky run, blacksky pair): its
// queues, bot, webhook and backups, and the one setup of the whatsmeow
// client they all need (Supervisor.Configure). Before, pair connected with a
// client of its own: no synchronous ack, no inbox, no answer to retry
// receipts, so a message that arrived while it ran was acknowledged to
// WhatsApp and never stored (issue 16).
type parts struct {
	cfg     *config.Config
	log     *slog.Logger
	version string // what the binary calls itself
	metrics *metrics.Metrics
	backups *backup.Manager
	webhook *webhook.Client // nil without WEBHOOK_URL
	queue   *outgoing.Queue
	bot     *bot.Bot
	// contacts answers who a recipient is, through the connection's client.
	contacts *contacts.Directory
	// conn is the connection once it exists: the parts above are built
	// before it and read it late (the bot's status, the directory's client).
	conn *lateConn
	// Supervisor are the connection's options, its client set up for all
	// of the above.
	Supervisor supervisor.Options
}

// connection is what the parts read of the account's connection: an
// account.Runner (run), or the lone supervisor of blacksky pair.
type connection interface {
	Status() supervisor.Status
	Supervisor() *supervisor.Supervisor
}

// lateConn is the connection, set once it is built.
type lateConn struct{ c atomic.Pointer[connection] }

func (l *lateConn) set(c connection) { l.c.Store(&c) }

func (l *lateConn) Status() supervisor.Status {
	if c := l.c.Load(); c != nil {
		return (*c).Status()
	}
	return supervisor.Status{State: supervisor.Connecting}
}

func (l *lateConn) Supervisor() *supervisor.Supervisor {
	if c := l.c.Load(); c != nil {
		return (*c).Supervisor()
	}
	return nil
}

// lone is a supervisor that is the whole connection (blacksky pair).
type lone struct{ s *supervisor.Supervisor }

func (l lone) Status() supervisor.Status { return l.s.Status() }

func (l lone) Supervisor() *supervisor.Supervisor { return l.s }

// assemble builds the account's parts on st, an open, migrated store.
func assemble(ctx context.Context, prog Program, cfg *config.Config, st *store.Store, log *slog.Logger, started time.Time) (*parts, error) {
	p := &parts{cfg: cfg, log: log, metrics: metrics.New(), conn: &lateConn{}, version: prog.version()}
	var err error
	if p.backups, err = newBackups(cfg, st, log); err != nil {
		return nil, err
	}
	if p.webhook, err = newWebhook(cfg, st, p.version, log); err != nil {
		return nil, err
	}
	p.queue = newQueue(cfg, st, p.webhook, log)
	p.bot = newBot(cfg, st, p.version, p.queue, p.webhook, p.backups, p.metrics, p.conn, started, log)
	if prog.Register != nil {
		prog.Register(p.bot)
	}
	p.metrics.Registry.MustRegister(p.queue.Collector(), jobs.Collector(p.jobQueues()...))
	// Contacts are looked up through the client of whichever lease this
	// process holds; a standby has none and answers from what it learnt.
	p.contacts = contacts.New(func() contacts.Client {
		if sup := p.conn.Supervisor(); sup != nil {
			return contacts.FromWhatsmeow(sup.Client)()
		}
		return nil
	})
	if p.Supervisor, err = supervisorOptions(ctx, cfg, st, log); err != nil {
		return nil, err
	}
	p.Supervisor.Metrics = p.metrics
	p.Supervisor.Alert = func(ctx context.Context, text string) { alertOwners(ctx, p.queue, cfg.Owners, text, log) }
	p.Supervisor.Configure = configureAll(p.Supervisor.Configure, p.bot.Configure, p.answerFromQueue)
	reportAccount(ctx, &p.Supervisor, p.webhook)
	return p, nil
}

// answerFromQueue is the queue's part of the client setup: recipients stuck
// on "waiting for this message" ask again, and the answer must survive our
// restarts, so it comes from the database; the recipients' receipts are
// stored before whatsmeow acknowledges them (a handler reporting success,
// under the bot's SynchronousAck); identity changes send undelivered
// messages again; WhatsApp's notices of the reach-out lock go to the queue,
// which holds sends by it.
func (p *parts) answerFromQueue(cli *whatsmeow.Client) error {
	cli.GetMessageForRetry = outgoing.RetryMessageFunc(p.queue)
	cli.AddEventHandlerWithSuccessStatus(p.queue.HandleWhatsAppEvent)
	return nil
}

// configureAll runs each setup of the client in order, skipping nil ones.
func configureAll(steps ...func(*whatsmeow.Client) error) func(*whatsmeow.Client) error {
	return func(cli *whatsmeow.Client) error {
		for _, step := range steps {
			if step == nil {
				continue
			}
			if err := step(cli); err != nil {
				return err
			}
		}
		return nil
	}
}

// httpOptions are the HTTP API's view of the account, served by conn.
func (p *parts) httpOptions(conn httpapi.Connection, st *store.Store, started time.Time) httpapi.Options {
	kinds := map[string]httpapi.Jobs{}
	for _, q := range p.jobQueues() {
		kinds[q.Table().Kind] = q
	}
	return httpapi.Options{
		Conn: conn, DB: st, Outgoing: p.queue, Contacts: p.contacts, Backups: backupStatus(p.cfg, p.backups),
		Database: string(st.Engine()), Metrics: p.metrics, Token: p.cfg.APIToken, BotName: p.cfg.BotName,
		Session: p.cfg.SessionID, Version: p.version, Started: started, Logger: p.log, Reachout: p.queue.ReachoutLock,
		Jobs: kinds,
	}
}

// jobQueues are the kinds of work on the job engine, for metrics and the API.
func (p *parts) jobQueues() []*jobs.Queue {
	qs := []*jobs.Queue{p.queue.Jobs(), p.bot.Jobs()}
	if p.webhook != nil {
		qs = append(qs, p.webhook.Jobs())
	}
	return qs
}

// lead is the work of the process holding the account, until ctx ends:
// scheduled backups, the bot's handling, the webhook's deliveries, and the
// outgoing queue through sup's connection.
func (p *parts) lead(ctx context.Context, sup *supervisor.Supervisor) {
	var wg sync.WaitGroup
	if p.cfg.ScheduledBackups() {
		wg.Go(func() { p.backups.Run(ctx, p.cfg.BackupInterval) })
	}
	wg.Go(func() { p.bot.Run(ctx) })
	if p.webhook != nil {
		wg.Go(func() { p.webhook.Run(ctx) })
	}
	p.deliver(ctx, sup)
	wg.Wait()
}

// deliver runs the outgoing queue through sup's connection until ctx ends.
// Holding the account lease, nobody else sends for this account: claims
// left in the table are a dead holder's, retried now rather than after
// their lease expires.
func (p *parts) deliver(ctx context.Context, sup *supervisor.Supervisor) {
	if n, err := p.queue.ReclaimAll(ctx); err != nil {
		p.log.Error("reclaim messages of a previous holder", "err", err)
	} else if n > 0 {
		p.log.Warn("retrying messages a previous process was sending when it stopped", "count", n)
	}
	sender := &outgoing.WhatsAppSender{Client: sup.Client, Contacts: p.contacts, Acks: sup}
	if err := p.queue.Run(ctx, sender, outgoing.SupervisorGate{Supervisor: sup}); err != nil {
		p.log.Error("outgoing stopped", "err", err)
	}
}
