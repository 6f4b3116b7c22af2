package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"

	"github.com/blacksky-bot/blacksky/internal/filelock"
)

//go:embed migrations
var migrations embed.FS

// migrateLockKey is the PostgreSQL advisory lock that serialises migrations
// of all blacksky processes on one database ("blksky" in ASCII).
const migrateLockKey = 0x626c6b736b79

// Migrate brings our schema and whatsmeow's to the newest version. Processes
// starting at the same time take turns, so each sees a finished schema.
func (s *Store) Migrate(ctx context.Context) error {
	unlock, err := s.lockMigrations(ctx)
	if err != nil {
		return fmt.Errorf("lock migrations: %w", err)
	}
	defer unlock()
	if err := s.container.Upgrade(ctx); err != nil {
		return fmt.Errorf("migrate whatsmeow store: %w", err)
	}
	p, err := s.provider()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate blacksky schema: %w", err)
	}
	for _, r := range results {
		s.log.Info("applied migration", "version", r.Source.Version, "file", r.Source.Path)
	}
	return nil
}

func (s *Store) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrations, "migrations/"+string(s.kind))
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	dialect := goose.DialectPostgres
	if s.kind == SQLite {
		dialect = goose.DialectSQLite3
	}
	p, err := goose.NewProvider(dialect, s.db, sub,
		goose.WithTableName("blacksky_schema_version"),
		goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return nil, fmt.Errorf("prepare migrations: %w", err)
	}
	return p, nil
}

func (s *Store) lockMigrations(ctx context.Context) (func(), error) {
	if s.kind == SQLite {
		l, err := filelock.Acquire(ctx, s.sqlite+".migrate-lock")
		if err != nil {
			return nil, err
		}
		return func() { l.Release() }, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		conn.Close()
		return nil, err
	}
	return func() {
		// Closing the session releases the lock even if the unlock fails.
		conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", migrateLockKey)
		conn.Close()
	}, nil
}

// Pending reports whether Migrate has schema changes left to apply.
func (s *Store) Pending(ctx context.Context) (bool, error) {
	p, err := s.provider()
	if err != nil {
		return false, err
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return pending, nil
}
