package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"time"

	wastore "go.mau.fi/whatsmeow/store"

	"github.com/blacksky-bot/blacksky/internal/account"
	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/lease"
	"github.com/blacksky-bot/blacksky/internal/memlimit"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

func runCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	cfg, ok := loadConfig(env, "run")
	if !ok {
		return exitUsage
	}
	log := newLogger(env, cfg)
	if err := serve(ctx, env, cfg, log); err != nil {
		if code := openFailure(err); code == exitUsage {
			// One line, as for a bad variable: the operator's to fix.
			fmt.Fprintf(env.stderr, "blacksky run: %v%s\n", err, helpFor(err))
			return code
		}
		log.Error("blacksky stopped", "err", err)
		fmt.Fprintf(env.stderr, "blacksky run: %v\n", err)
		return exitFailure
	}
	return exitOK
}

// serve runs the bot until ctx ends, then shuts down within the configured
// timeout: HTTP first, then the WhatsApp connection (never logging out),
// then the database.
func serve(ctx context.Context, env *environment, cfg *config.Config, log *slog.Logger) error {
	started := time.Now()
	log.Info("starting blacksky", "version", env.program.version(), "session", cfg.SessionID, "database", describeDatabase(cfg))
	for _, name := range cfg.Ignored {
		log.Warn("ignoring variable of the original bot that blacksky does not need", "var", name)
	}
	for _, old := range slices.Sorted(maps.Keys(cfg.Renamed)) {
		log.Warn("variable read under its old name; it still works, the new name is preferred", "var", old, "new_name", cfg.Renamed[old])
	}
	memlimit.Apply(cfg.MaxMemoryMB, log)

	// Bind the port before anything slow: Heroku kills a web dyno that does
	// not listen within 60 s, and a port in use should fail at once.
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w; set PORT to a free port (or LISTEN_ADDR to an address of this machine)", cfg.ListenAddr, err)
	}
	defer ln.Close()

	st, err := openStore(ctx, cfg, log, true)
	if errors.Is(err, store.ErrCorrupt) {
		st, err = recoverCorruptSQLite(ctx, cfg, log, err)
	}
	if err != nil {
		return err
	}
	defer st.Close()
	if !cfg.BackupsEnabled() {
		log.Warn("SESSION_ENCRYPTION_KEY is not set: session backups are off (they are never written in plaintext)")
	}
	p, err := assemble(ctx, env.program, cfg, st, log, started)
	if err != nil {
		return err
	}
	acct := account.New(account.Options{
		Store: st, SessionID: cfg.SessionID, Logger: log, Supervisor: p.Supervisor,
		Poll: cfg.LeaseInterval, Lease: lease.Options{Check: cfg.LeaseInterval},
		Prepare:  restoreMissing(p.backups, log),
		OnLeader: p.lead,
		OnStop:   func(ctx context.Context) { finalBackup(ctx, cfg, p.backups, log) },
	})
	p.conn.set(acct)
	srv := httpapi.NewServer(httpapi.New(p.httpOptions(acct, st, started)))
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(ln) }()
	log.Info("serving HTTP", "addr", ln.Addr().String(), "auth", authMode(cfg))

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	supDone := make(chan error, 1)
	go func() { supDone <- acct.Run(runCtx) }()
	// JSON logs carry the code in the QR line; a drawing would break them.
	if cfg.LogFormat != "json" {
		go newQRPrinter(env.stderr, qrReprint).run(runCtx, acct)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case err := <-srvErr:
		runErr = fmt.Errorf("serve HTTP: %w", err)
	case runErr = <-supDone:
		supDone <- runErr
	}
	return errors.Join(runErr, shutdown(cfg.ShutdownTimeout, log, srv, cancelRun, supDone))
}

// shutdown stops HTTP and the connection within timeout.
func shutdown(timeout time.Duration, log *slog.Logger, srv *http.Server, stopSup context.CancelFunc, supDone <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("HTTP shutdown", "err", err)
	}
	stopSup()
	select {
	case <-supDone:
	case <-ctx.Done():
		return fmt.Errorf("shutdown took longer than %s", timeout)
	}
	log.Info("shut down cleanly")
	return nil
}

func authMode(cfg *config.Config) string {
	if cfg.APIToken != "" {
		return "API_TOKEN"
	}
	return "loopback only (API_TOKEN not set)"
}

// pairingSource is what the QR and code printers watch.
type pairingSource interface {
	Pairing() supervisor.Pairing
	WaitFor(ctx context.Context, cond func(supervisor.Status, supervisor.Pairing) bool) error
}

// supervisorOptions turns the configuration into the connection's options,
// pointing whatsmeow at the sandbox when WA_SANDBOX is set. The sandbox's
// HTTP client serves both the probes and the fetch of WhatsApp Web's version
// after a 405, so the sandbox answers both as WhatsApp would.
func supervisorOptions(ctx context.Context, cfg *config.Config, st *store.Store, log *slog.Logger) (supervisor.Options, error) {
	opts := supervisor.Options{
		Store:            st,
		SessionID:        cfg.SessionID,
		Logger:           log,
		Backoff:          backoff.Policy{Base: cfg.ReconnectBaseDelay, Max: cfg.ReconnectMaxDelay},
		MaxRetries:       cfg.ReconnectMaxRetries,
		PairPhone:        cfg.PairPhone,
		ProbeInterval:    cfg.ReconnectProbe,
		AlertAfter:       cfg.ReconnectAlertAfter,
		KeepAliveMaxFail: cfg.KeepAliveMaxFail,
		AckTimeout:       cfg.AckTimeout,
		SilenceTimeout:   cfg.SilenceTimeout,
		ReplacedBackoff:  cfg.ReplacedBackoff,
		PinnedVersion:    wastore.WAVersionContainer(cfg.WAVersion),
	}
	if cfg.Sandbox != "" {
		t, err := sandboxTarget(cfg.Sandbox, cfg.SandboxTrust, log)
		if err != nil {
			return opts, err
		}
		opts.Configure, opts.ProbeClient = t.configure, t.client
	}
	return opts, nil
}
