package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/memlimit"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// finding is one line of the doctor's report.
type finding struct {
	level  string // "ok", "warn" or "FAIL"
	name   string
	detail string
	help   troubleshoot.Section // where to read, on warn and FAIL lines
	config bool                 // a FAIL that is the configuration's to fix
}

func okFinding(name, detail string) finding { return finding{level: "ok", name: name, detail: detail} }

func warnFinding(name, detail string, help troubleshoot.Section) finding {
	return finding{level: "warn", name: name, detail: detail, help: help}
}

func failFinding(name, detail string, help troubleshoot.Section) finding {
	return finding{level: "FAIL", name: name, detail: detail, help: help}
}

func (f finding) String() string {
	line := fmt.Sprintf("%-5s %-9s %s", f.level, f.name, oneLine(f.detail))
	if f.help != "" {
		line += "; see " + f.help.URL()
	}
	return line
}

// oneLine folds a message (a value with a newline, a driver's report)
// onto one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// check is one of the doctor's checks and the variables it reads.
type check struct {
	vars []string
	run  func(ctx context.Context, cfg *config.Config) []finding
}

var checks = []check{
	{[]string{"DATA_DIR"}, checkDataDir},
	{[]string{"DATABASE_URL", "PGSSLMODE", "DATA_DIR", "SESSION_ID"}, checkDatabase},
	{[]string{"MAX_MEMORY_MB"}, checkMemory},
	{[]string{"API_TOKEN"}, checkToken},
	{[]string{"PORT", "LISTEN_ADDR"}, checkPort},
	{[]string{"WA_SANDBOX"}, checkSandbox},
}

// doctorCommand looks and changes nothing: it creates no file, directory or
// table (a database it finds is opened read-only, store.ReadOnly), so that
// running it on a fresh machine, or against the wrong DATA_DIR, leaves no
// trace a later bot could mistake for its own. It reports every problem it
// finds, one line each with where to read about it, and exits 2 when one
// is the configuration's (a bad variable), else 1 when something is wrong
// at run time (a database down, a directory not writable, a session gone),
// else 0; warnings do not change the exit code.
func doctorCommand(ctx context.Context, env *environment, args []string) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	if code := parseFlags(env, fs, args); code >= 0 {
		return code
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	findings, bad := configFindings(env.getenv)
	for _, c := range checks {
		cfg := configFor(env.getenv, c.vars, bad)
		if cfg != nil {
			findings = append(findings, c.run(ctx, cfg)...)
		}
	}
	code := exitOK
	for _, f := range findings {
		fmt.Fprintln(env.stdout, f)
		switch {
		case f.level == "FAIL" && f.config:
			code = exitUsage
		case f.level == "FAIL" && code == exitOK:
			code = exitFailure
		}
	}
	return code
}

// configFindings is one line per bad variable, or one saying all are
// valid, and the names of the bad ones.
func configFindings(getenv config.Getenv) ([]finding, []string) {
	_, err := config.Load(getenv)
	if err == nil {
		return []finding{okFinding("config", "all variables valid")}, nil
	}
	var es config.Errors
	if !errors.As(err, &es) {
		return []finding{configFailure(err.Error())}, []string{"*"}
	}
	var out []finding
	var bad []string
	for _, e := range es {
		out = append(out, configFailure(e.Error()))
		bad = append(bad, e.Var)
	}
	return out, bad
}

func configFailure(detail string) finding {
	f := failFinding("config", detail, troubleshoot.Configuration)
	f.config = true
	return f
}

// configFor is the configuration a check runs on: all of it when it is
// valid; with bad variables, nil when the check reads one of them, and
// otherwise the configuration of the check's own variables alone (every
// other one at its default), so that one bad variable hides only the
// checks it concerns.
func configFor(getenv config.Getenv, vars, bad []string) *config.Config {
	if len(bad) == 0 {
		cfg, _ := config.Load(getenv)
		return cfg
	}
	for _, v := range vars {
		if slices.Contains(bad, v) || slices.Contains(bad, "*") {
			return nil
		}
	}
	cfg, err := config.Load(func(name string) (string, bool) {
		if !slices.Contains(vars, name) {
			return "", false
		}
		return getenv(name)
	})
	if err != nil {
		return nil
	}
	return cfg
}

// checkDataDir checks, without writing, that blacksky run may create and
// write its files in DATA_DIR (store.CheckWritableReadOnly says what such a
// check cannot see).
func checkDataDir(_ context.Context, cfg *config.Config) []finding {
	if err := store.CheckWritableReadOnly(cfg.SQLitePath()); err != nil {
		return []finding{failFinding("data dir", err.Error(), troubleshoot.DataDir)}
	}
	if _, err := os.Stat(cfg.DataDir); err != nil {
		return []finding{okFinding("data dir", cfg.DataDir+" does not exist yet; 'blacksky run' creates it (the directory above is writable)")}
	}
	return []finding{okFinding("data dir", cfg.DataDir+" is writable")}
}

// checkDatabase opens the database read-only and reads its schema and
// session.
func checkDatabase(ctx context.Context, cfg *config.Config) []finding {
	st, err := store.Open(ctx, storeOptions(cfg, store.ReadOnly))
	switch {
	case errors.Is(err, store.ErrNoDatabase):
		return []finding{warnFinding("database", fmt.Sprintf("no database yet at %s; 'blacksky run' creates it", cfg.SQLitePath()), troubleshoot.Database)}
	case errors.Is(err, store.ErrConfig):
		return []finding{configFailure(err.Error())}
	case err != nil:
		return []finding{failFinding("database", err.Error(), troubleshoot.Database)}
	}
	defer st.Close()
	out := []finding{okFinding("database", st.Where()+" answers")}
	state, err := st.Schema(ctx)
	switch {
	case err != nil:
		return append(out, failFinding("schema", err.Error(), troubleshoot.Database))
	case state == store.SchemaNone:
		return append(out, warnFinding("schema", "no blacksky tables yet; 'blacksky run' creates them", troubleshoot.Database))
	case state == store.SchemaPending:
		// The session's tables may be older than this binary reads.
		return append(out, warnFinding("schema", "migrations pending; 'blacksky run' applies them at start", troubleshoot.Database))
	}
	out = append(out, okFinding("schema", "up to date"))
	return append(out, checkSession(ctx, cfg, st))
}

func checkSession(ctx context.Context, cfg *config.Config, st *store.Store) finding {
	jid, paired, err := st.Account(ctx, cfg.SessionID)
	if err != nil {
		return failFinding("session", err.Error(), troubleshoot.Database)
	}
	if !paired {
		return warnFinding("session", fmt.Sprintf("%q is not paired; run 'blacksky pair' or scan the QR code 'blacksky run' shows", cfg.SessionID), troubleshoot.NotPaired)
	}
	dev, err := st.Container().GetDevice(ctx, jid)
	if err != nil || dev == nil {
		return failFinding("session", fmt.Sprintf("%q was paired as %s but its keys are missing; pair again", cfg.SessionID, jid), troubleshoot.LoggedOut)
	}
	return okFinding("session", fmt.Sprintf("%q is paired as %s", cfg.SessionID, jid))
}

func checkMemory(_ context.Context, cfg *config.Config) []finding {
	limit := memlimit.Apply(cfg.MaxMemoryMB, slog.New(slog.DiscardHandler))
	if limit == 0 {
		return []finding{warnFinding("memory", "no limit found; set MAX_MEMORY_MB to your plan's memory (512 on a Heroku Eco/Basic dyno)", troubleshoot.Memory)}
	}
	return []finding{okFinding("memory", fmt.Sprintf("Go memory limit %d MB", limit>>20))}
}

func checkToken(_ context.Context, cfg *config.Config) []finding {
	if cfg.APIToken == "" {
		return []finding{warnFinding("api token", "API_TOKEN not set: /pair and the API answer only requests from this machine", troubleshoot.Configuration)}
	}
	return []finding{okFinding("api token", "set")}
}

func checkPort(_ context.Context, cfg *config.Config) []finding {
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return []finding{warnFinding("port", fmt.Sprintf("%s is in use or not this machine's (is blacksky already running?): %v", cfg.ListenAddr, errors.Unwrap(err)), troubleshoot.Configuration)}
	}
	ln.Close()
	return []finding{okFinding("port", cfg.ListenAddr+" is free")}
}

func checkSandbox(_ context.Context, cfg *config.Config) []finding {
	if cfg.Sandbox == "" {
		return nil
	}
	if _, err := sandboxTarget(cfg.Sandbox, cfg.SandboxTrust, slog.New(slog.DiscardHandler)); err != nil {
		return []finding{failFinding("sandbox", err.Error(), troubleshoot.Offline)}
	}
	return []finding{okFinding("sandbox", cfg.Sandbox+" is trusted from "+cfg.SandboxTrust+" (NOT talking to WhatsApp)")}
}
