package main

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

// openFailure is the exit code for a database that did not open: a data
// directory the process may not write is for the operator to fix (exit 2,
// like a bad variable), anything else is a runtime failure.
func openFailure(err error) int {
	if errors.Is(err, store.ErrNotWritable) {
		return exitUsage
	}
	return exitFailure
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
