package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/memlimit"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// checkResult is one line of the doctor's report.
type checkResult struct {
	level  string // "ok", "warn" or "FAIL"
	name   string
	detail string
}

func doctorCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	cfg, ok := loadConfig(env, "doctor")
	if !ok {
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	results := []checkResult{{"ok", "config", "all variables valid"}}
	results = append(results, checkDataDir(cfg))
	results = append(results, checkDatabase(ctx, cfg)...)
	results = append(results, checkMemory(cfg), checkToken(cfg), checkPort(cfg))
	if cfg.Sandbox != "" {
		results = append(results, checkSandbox(ctx, cfg))
	}
	failed := false
	for _, r := range results {
		fmt.Fprintf(env.stdout, "%-5s %-9s %s\n", r.level, r.name, r.detail)
		failed = failed || r.level == "FAIL"
	}
	if failed {
		return exitFailure
	}
	return exitOK
}

func checkDataDir(cfg *config.Config) checkResult {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return checkResult{"FAIL", "data dir", err.Error()}
	}
	f, err := os.CreateTemp(cfg.DataDir, ".doctor-*")
	if err != nil {
		return checkResult{"FAIL", "data dir", fmt.Sprintf("%s is not writable: %v", cfg.DataDir, err)}
	}
	f.Close()
	os.Remove(f.Name())
	return checkResult{"ok", "data dir", cfg.DataDir + " is writable"}
}

func checkDatabase(ctx context.Context, cfg *config.Config) []checkResult {
	st, err := openStore(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		return []checkResult{{"FAIL", "database", err.Error()}}
	}
	defer st.Close()
	out := []checkResult{{"ok", "database", describeDatabase(cfg) + " answers"}}
	pending, err := st.Pending(ctx)
	switch {
	case err != nil:
		return append(out, checkResult{"FAIL", "schema", err.Error()})
	case pending:
		return append(out, checkResult{"warn", "schema", "migrations pending; 'blacksky run' applies them at start"},
			checkResult{"warn", "session", "unknown until the schema is migrated"})
	}
	out = append(out, checkResult{"ok", "schema", "up to date"})
	return append(out, checkSession(ctx, cfg, st))
}

func checkSession(ctx context.Context, cfg *config.Config, st *store.Store) checkResult {
	jid, ok, err := st.Account(ctx, cfg.SessionID)
	if err != nil {
		return checkResult{"FAIL", "session", err.Error()}
	}
	if !ok {
		return checkResult{"warn", "session", fmt.Sprintf("%q is not paired; run 'blacksky pair' or scan the QR code 'blacksky run' shows", cfg.SessionID)}
	}
	dev, err := st.Container().GetDevice(ctx, jid)
	if err != nil || dev == nil {
		return checkResult{"FAIL", "session", fmt.Sprintf("%q was paired as %s but its keys are missing; pair again", cfg.SessionID, jid)}
	}
	return checkResult{"ok", "session", fmt.Sprintf("%q is paired as %s", cfg.SessionID, jid)}
}

func checkMemory(cfg *config.Config) checkResult {
	limit := memlimit.Apply(cfg.MaxMemoryMB, slog.New(slog.DiscardHandler))
	if limit == 0 {
		return checkResult{"warn", "memory", "no limit found; set MAX_MEMORY_MB to your plan's memory (512 on a Heroku Eco/Basic dyno)"}
	}
	return checkResult{"ok", "memory", fmt.Sprintf("Go memory limit %d MB", limit>>20)}
}

func checkToken(cfg *config.Config) checkResult {
	if cfg.APIToken == "" {
		return checkResult{"warn", "api token", "API_TOKEN not set: /pair and the API answer only requests from this machine"}
	}
	return checkResult{"ok", "api token", "set"}
}

func checkPort(cfg *config.Config) checkResult {
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return checkResult{"warn", "port", fmt.Sprintf("port %d is in use (is blacksky already running?): %v", cfg.Port, errors.Unwrap(err))}
	}
	ln.Close()
	return checkResult{"ok", "port", fmt.Sprintf("port %d is free", cfg.Port)}
}

func checkSandbox(ctx context.Context, cfg *config.Config) checkResult {
	if _, err := sandboxTarget(cfg.Sandbox, cfg.SandboxTrust, slog.New(slog.DiscardHandler)); err != nil {
		return checkResult{"FAIL", "sandbox", err.Error()}
	}
	return checkResult{"ok", "sandbox", cfg.Sandbox + " is trusted from " + cfg.SandboxTrust + " (NOT talking to WhatsApp)"}
}
