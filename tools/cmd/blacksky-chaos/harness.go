package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testdb"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// harness is everything one chaos run drives.
type harness struct {
	cfg      config
	log      *slog.Logger
	dir      string
	sb       *sandbox
	bots     []*bot
	contacts []string // every contact with an inbox, movers included
	addr     addressing
	// readReceipts is each contact's privacy setting (receipts.go).
	readReceipts map[string]bool
	pg           *pgProxy  // between the bots and PostgreSQL, for black holes
	pgDirect     string    // the bots' database, not through the proxy
	diskFull     *diskFull // the SQLite data directory's own small file system; nil without root

	mu            sync.Mutex
	leader        int // index of the bot that leads, -1 when none is known
	leaderChanges int
}

// chaosRun sets everything up, runs the chaos for cfg.duration, waits for the
// backlog and returns the report. Every process it starts is killed before
// it returns.
func chaosRun(ctx context.Context, cfg config, stderr io.Writer) (rep *Report, err error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	dir, err := os.MkdirTemp("", "blacksky-chaos-")
	if err != nil {
		return nil, fmt.Errorf("make work directory: %w", err)
	}
	defer func() {
		// Logs are what explains a failure; keep them when it failed.
		if cfg.keepLogs || err != nil || (rep != nil && !rep.OK()) {
			log.Info("process logs kept", "dir", dir)
			if rep != nil {
				rep.LogDir = dir
			}
			return
		}
		os.RemoveAll(dir)
	}()
	h := &harness{cfg: cfg, log: log, dir: dir, leader: -1}
	bins, err := h.binaries(ctx)
	if err != nil {
		return nil, err
	}
	bin := bins.Blacksky
	dbURL := ""
	if cfg.store == "postgres" {
		var drop func()
		h.pgDirect, drop, err = testdb.Create(ctx, cfg.pgURL, "blacksky_chaos_")
		if err != nil {
			return nil, fmt.Errorf("--postgres-url: %w", err)
		}
		defer drop()
		if dbURL, err = h.startProxy(); err != nil {
			return nil, err
		}
		defer h.pg.close()
	} else if os.Geteuid() == 0 {
		if h.diskFull, err = mountSmallDisk(filepath.Join(dir, "data")); err != nil {
			log.Warn("no disk-full action in this run", "err", err)
		} else {
			defer h.diskFull.unmount()
		}
	} else {
		log.Warn("no disk-full action in this run: mounting a small file system for it needs root")
	}
	for i := range cfg.contacts {
		h.contacts = append(h.contacts, fmt.Sprintf("1555100%04d", i))
	}
	if h.sb, err = startSandbox(ctx, bins.Sandbox, dir, h.contacts); err != nil {
		return nil, err
	}
	defer h.sb.Kill()
	if err := h.setUpAddressing(ctx); err != nil {
		return nil, err
	}
	if err := h.setUpReaders(ctx); err != nil {
		return nil, err
	}
	return h.run(ctx, bin, dbURL)
}

// startProxy puts a proxy between the bots and their database and returns
// the URL the bots use.
func (h *harness) startProxy() (string, error) {
	u, err := url.Parse(h.pgDirect)
	if err != nil {
		return "", fmt.Errorf("parse database URL: %w", err)
	}
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	if h.pg, err = startPGProxy(target); err != nil {
		return "", err
	}
	return h.pg.url(h.pgDirect)
}

// run starts the bots, pairs, and runs the phases.
func (h *harness) run(ctx context.Context, bin, dbURL string) (*Report, error) {
	ctx, stopBots := context.WithCancel(ctx)
	var botsDone sync.WaitGroup
	defer func() { stopBots(); botsDone.Wait() }()
	vars := h.botVars(dbURL)
	for i := range 2 {
		b, err := newBot(fmt.Sprintf("bot%d", i+1), bin, h.dir, vars)
		if err != nil {
			return nil, err
		}
		h.bots = append(h.bots, b)
	}
	startBot := func(b *bot) {
		botsDone.Go(func() {
			if err := b.loop(ctx); err != nil {
				h.log.Error("bot loop stopped", "bot", b.name, "err", err)
			}
		})
		<-b.started
	}
	// The first bot pairs alone, so it is the one holding the account.
	startBot(h.bots[0])
	if err := h.pair(ctx, h.bots[0]); err != nil {
		return nil, err
	}
	if err := h.learnContacts(ctx, h.bots[0]); err != nil {
		return nil, err
	}
	startBot(h.bots[1])
	h.log.Info("paired; chaos starts", "store", h.cfg.store, "duration", h.cfg.duration, "contacts", len(h.contacts),
		"rate_per_s", h.cfg.rate, "seed", h.cfg.seed)
	return h.phases(ctx)
}

// silenceTimeout is the bots' SILENCE_TIMEOUT: how long a deaf connection
// with nothing to send can last (the minimum the setting allows).
const silenceTimeout = time.Minute

// botVars is the bots' environment: fast to reconnect and retry, unthrottled,
// loopback-only API, backups on.
func (h *harness) botVars(dbURL string) map[string]string {
	v := map[string]string{
		"DATA_DIR": filepath.Join(h.dir, "data"), "WA_SANDBOX": h.sb.url, "WA_SANDBOX_TRUST": h.sb.trust, "SESSION_ID": "chaos",
		"RECONNECT_BASE_DELAY": "100ms", "RECONNECT_MAX_DELAY": "1s", "RECONNECT_PROBE_INTERVAL": "100ms",
		"SEND_RATE_PER_MINUTE": "0", "SEND_CHAT_GAP": "0", "OUTGOING_RETRY_BASE_DELAY": "100ms",
		"OUTGOING_RETRY_MAX_DELAY": "1s", "OUTGOING_SEND_TIMEOUT": "2s", "LEASE_INTERVAL": "200ms",
		"SESSION_ENCRYPTION_KEY": "chaos-run-key-" + randomHex(8), "SHUTDOWN_TIMEOUT": "10s",
		"KEEPALIVE_MAX_FAIL": "10s", "SILENCE_TIMEOUT": silenceTimeout.String(), "LOG_LEVEL": "info",
		// Messages to a contact without a LID wait for its migration, retried.
		"OUTGOING_MAX_ATTEMPTS": "1000",
	}
	if dbURL != "" {
		v["DATABASE_URL"] = dbURL
	}
	return v
}

// firstRoundLimit bounds the first round of chaos actions beyond --duration.
// Every action is bounded by its own waits (the longest, undecryptable, by
// 20 s to see a connection and SILENCE_TIMEOUT + 30 s for its answer), so
// this is only a guard against a stuck harness.
const firstRoundLimit = 5 * time.Minute

// phases runs the sender, the chaos and the leader monitor for the set
// duration, then settles and checks.
func (h *harness) phases(ctx context.Context) (*Report, error) {
	started := time.Now()
	monCtx, stopMon := context.WithCancel(ctx)
	var mon sync.WaitGroup
	mon.Go(func() { h.watchLeader(monCtx) })
	conns := &connWatch{}
	mon.Go(func() { h.watchConnections(monCtx, conns) })
	mon.Go(func() { h.progress(monCtx) })
	defer func() { stopMon(); mon.Wait() }()

	s := newSender(h)
	// The chaos lasts --duration, or longer to finish its first round of
	// actions; the sending stops with it. The first round is not cut at a
	// multiple of --duration: one action alone may take SILENCE_TIMEOUT +
	// 30 s (undecryptable after a deaf fault), and a CI run of seed
	// 1796213132054833115 cut at twice its 30 s left 8 actions undone.
	until := time.Now().Add(h.cfg.duration)
	chaosCtx, stopChaos := context.WithTimeout(ctx, h.cfg.duration+firstRoundLimit)
	defer stopChaos()
	stopSending := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.run(ctx, stopSending) })
	var moved int
	// Within 5 minutes at most: the movers' first messages retry about once
	// a second meanwhile, and OUTGOING_MAX_ATTEMPTS is at most 1000.
	wg.Go(func() { moved = h.migrate(chaosCtx, min(h.cfg.duration/2, 5*time.Minute)) })
	c := newChaos(h)
	c.run(chaosCtx, until)
	chaosTook := time.Since(started)
	close(stopSending)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	h.log.Info("chaos over; settling", "accepted", len(s.accepted()), "actions", c.total())

	drainStart := time.Now()
	if err := h.settle(ctx); err != nil {
		h.log.Warn("settle", "err", err)
	}
	h.drain(ctx, s.accepted())
	drained := time.Since(drainStart)
	rep, err := h.check(ctx, s, c)
	if err != nil {
		return nil, err
	}
	rep.Migrations = moved
	stopMon()
	mon.Wait()
	rep.connections(conns, rep.arrived)
	rep.Elapsed = dur(time.Since(started))
	rep.ChaosFor = dur(chaosTook)
	rep.Drain = dur(drained)
	h.mu.Lock()
	rep.LeaderChanges = h.leaderChanges
	h.mu.Unlock()
	for _, b := range h.bots {
		b.mu.Lock()
		rep.BotStarts += b.starts
		rep.UnexpectedExits = append(rep.UnexpectedExits, b.unexpected...)
		b.mu.Unlock()
	}
	return rep, nil
}

// binaries builds ./cmd/blacksky and ./cmd/blacksky-sandbox unless
// --binary and --sandbox-binary name them.
func (h *harness) binaries(ctx context.Context) (testkit.Binaries, error) {
	bins := testkit.Binaries{Blacksky: h.cfg.binary, Sandbox: h.cfg.sandbox}
	var err error
	if bins.Blacksky == "" {
		h.log.Info("building blacksky", "dir", h.dir)
		bins.Blacksky, err = testkit.BuildBlacksky(ctx, h.dir)
	}
	if err == nil && bins.Sandbox == "" {
		h.log.Info("building blacksky-sandbox", "dir", h.dir)
		bins.Sandbox, err = testkit.BuildSandbox(ctx, h.dir)
	}
	return bins, err
}

// pair links the bot through the control API: its QR code, scanned by the
// simulated phone.
func (h *harness) pair(ctx context.Context, b *bot) error {
	var pair struct {
		QR string `json:"qr"`
	}
	err := poll(ctx, 30*time.Second, func() bool {
		return doJSON(ctx, "GET", b.url("/api/v1/pair"), nil, &pair) == http.StatusOK && pair.QR != ""
	})
	if err != nil {
		return fmt.Errorf("pair: no QR code on /api/v1/pair (see %s): %w", b.logPath, err)
	}
	if code := doJSON(ctx, "POST", h.sb.url+"/control/phone/scan", map[string]string{"qr": pair.QR}, nil); code != http.StatusOK {
		return fmt.Errorf("pair: scan answered HTTP %d", code)
	}
	if err := h.waitReady(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("pair: %w", err)
	}
	return nil
}

// waitReady waits until one bot answers /readyz with 200.
func (h *harness) waitReady(ctx context.Context, d time.Duration) error {
	err := poll(ctx, d, func() bool {
		for _, b := range h.bots {
			if b.current() != nil && doJSON(ctx, "GET", b.url("/readyz"), nil, nil) == http.StatusOK {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("no bot became ready: %w", err)
	}
	return nil
}

// watchLeader polls the bots' /status and counts hand-overs of the account.
func (h *harness) watchLeader(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, b := range h.bots {
			if _, leads := b.status(ctx); leads {
				h.setLeader(i)
				break
			}
		}
	}
}

// progress logs the backlog every 10 s, so a long wait in the report can be
// matched with what the queue looked like.
func (h *harness) progress(ctx context.Context) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		i, _ := h.leaderBot()
		h.log.Info("progress", "backlog", h.queueBusy(ctx), "leader", h.bots[i].name)
	}
}

func (h *harness) setLeader(i int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.leader >= 0 && h.leader != i {
		h.leaderChanges++
	}
	h.leader = i
}

// leaderBot returns the bot last seen leading (the first one before any).
func (h *harness) leaderBot() (int, *bot) {
	h.mu.Lock()
	defer h.mu.Unlock()
	i := max(h.leader, 0)
	return i, h.bots[i]
}

// settle ends the chaos: faults cleared, and a bot connected.
func (h *harness) settle(ctx context.Context) error {
	if err := h.sb.clearFaults(ctx); err != nil {
		return err
	}
	return h.waitReady(ctx, time.Minute)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
