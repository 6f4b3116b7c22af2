package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/blacksky-bot/blacksky/internal/config"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
	thirdparty "github.com/blacksky-bot/blacksky/third_party"
)

// loadConfig reads the environment, printing one line per invalid variable
// and returning false when there is one.
func loadConfig(env *environment, cmd string) (*config.Config, bool) {
	cfg, err := config.Load(env.getenv)
	if err != nil {
		for _, line := range configProblems(err) {
			fmt.Fprintf(env.stderr, "blacksky %s: %s\n", cmd, line)
		}
		return nil, false
	}
	return cfg, true
}

// configProblems is one line per problem of a config.Load error.
func configProblems(err error) []string {
	var es config.Errors
	if !errors.As(err, &es) {
		return []string{err.Error()}
	}
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return lines
}

func newLogger(env *environment, cfg *config.Config) *slog.Logger {
	return logging.New(env.stderr, cfg.LogFormat, cfg.LogLevel).With("bot", cfg.BotName)
}

// openStore opens the configured database and, when migrate is set, brings
// its schema up to date.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, migrate bool) (*store.Store, error) {
	opts := store.Options{PostgresURL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath(), Logger: log}
	st, err := store.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if migrate {
		if err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// openExistingStore opens the database a bot has set up (store.Existing)
// and brings its schema up to date, as the bot would at its next start.
func openExistingStore(ctx context.Context, cfg *config.Config) (*store.Store, error) {
	st, err := store.Open(ctx, storeOptions(cfg, store.Existing))
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

func storeOptions(cfg *config.Config, mode store.Mode) store.Options {
	return store.Options{PostgresURL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath(), Mode: mode, Logger: slog.New(slog.DiscardHandler)}
}

// openFailure is the exit code for a database that did not open: a data
// directory the process may not write, driver settings it refuses, or a
// database no bot has set up are for the operator to fix (exit 2, like a
// bad variable), anything else is a runtime failure.
func openFailure(err error) int {
	if errors.Is(err, store.ErrNotWritable) || errors.Is(err, store.ErrConfig) || errors.Is(err, store.ErrNoDatabase) {
		return exitUsage
	}
	return exitFailure
}

// noDatabaseHint says, after a store.ErrNoDatabase, which variable chose
// the database and the two ways out; nothing for other errors.
func noDatabaseHint(cfg *config.Config, err error) string {
	switch {
	case !errors.Is(err, store.ErrNoDatabase):
		return ""
	case cfg.UsesPostgres():
		return "; no bot has run with this DATABASE_URL: start the bot with it first (blacksky run), or set DATABASE_URL to the running bot's database"
	}
	return fmt.Sprintf("; no bot has run with DATA_DIR=%s: start the bot there first (blacksky run), or set DATA_DIR to the running bot's data directory", cfg.DataDir)
}

// helpFor is where to read about an operator's failure to open the
// database, as a suffix of its one line; nothing for other errors.
func helpFor(err error) string {
	switch {
	case errors.Is(err, store.ErrNotWritable):
		return " (see " + troubleshoot.DataDir.URL() + ")"
	case errors.Is(err, store.ErrNoDatabase), errors.Is(err, store.ErrConfig):
		return " (see " + troubleshoot.Database.URL() + ")"
	}
	return ""
}

func describeDatabase(cfg *config.Config) string {
	if cfg.UsesPostgres() {
		return "postgres"
	}
	return "sqlite " + cfg.SQLitePath()
}

// dependencyVersions names the Go and whatsmeow versions the binary was built with.
// describeWhatsmeow names the whatsmeow version and, when the binary was
// built from the patched copy in third_party, the patches it carries.
func describeWhatsmeow(dep *debug.Module) string {
	if dep.Replace == nil {
		return "whatsmeow " + dep.Version
	}
	return fmt.Sprintf("whatsmeow %s patched (%s; see third_party/README.md)", dep.Version, strings.Join(thirdparty.WhatsmeowPatches(), ", "))
}

func dependencyVersions() string {
	parts := []string{runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "go.mau.fi/whatsmeow" {
				parts = append(parts, describeWhatsmeow(dep))
			}
		}
	}
	return strings.Join(parts, ", ")
}
