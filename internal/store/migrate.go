package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
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

// SchemaState is how a database's schema stands to this binary's.
type SchemaState int

// The states.
const (
	// SchemaNone: no blacksky tables, so no bot has run on the database.
	SchemaNone SchemaState = iota
	// SchemaPending: an older blacksky's tables; Migrate has changes to apply.
	SchemaPending
	// SchemaCurrent: nothing for Migrate to do.
	SchemaCurrent
)

// versionTable is goose's record of our applied migrations.
const versionTable = "blacksky_schema_version"

// Schema reads how the schema stands without changing anything: goose's
// own check (HasPending) creates its version table first, which would
// leave a database no bot has used looking used.
func (s *Store) Schema(ctx context.Context) (SchemaState, error) {
	ours, err := s.tableExists(ctx, versionTable)
	if err != nil || !ours {
		return SchemaNone, err
	}
	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return SchemaNone, err
	}
	p, err := s.provider()
	if err != nil {
		return SchemaNone, err
	}
	for _, src := range p.ListSources() {
		if !applied[src.Version] {
			return SchemaPending, nil
		}
	}
	theirs, err := s.whatsmeowCurrent(ctx)
	if err != nil || !theirs {
		return SchemaPending, err
	}
	return SchemaCurrent, nil
}

func (s *Store) tableExists(ctx context.Context, name string) (bool, error) {
	// to_regclass looks the name up on the search path, as goose's
	// unqualified table name is.
	q := "SELECT to_regclass($1) IS NOT NULL"
	if s.kind == SQLite {
		q = "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = $1"
	}
	var ok bool
	if err := s.db.QueryRowContext(ctx, q, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("check schema: %w", err)
	}
	return ok, nil
}

func (s *Store) appliedVersions(ctx context.Context) (map[int64]bool, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT version_id FROM "+versionTable+" WHERE is_applied")
	if err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	defer rows.Close()
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("check schema: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("check schema: %w", err)
	}
	return applied, nil
}

// whatsmeowCurrent reports whether whatsmeow's store is at the version
// this binary's whatsmeow upgrades it to.
func (s *Store) whatsmeowCurrent(ctx context.Context) (bool, error) {
	ok, err := s.tableExists(ctx, s.wadb.VersionTable)
	if err != nil || !ok {
		return false, err
	}
	var version int
	err = s.db.QueryRowContext(ctx, "SELECT version FROM "+s.wadb.VersionTable+" LIMIT 1").Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check whatsmeow schema: %w", err)
	}
	return version >= len(s.wadb.UpgradeTable), nil
}
