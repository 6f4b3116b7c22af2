package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/testdb"
)

// files lists what is in dir, for the tests that nothing appeared.
func files(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Existing and ReadOnly create no SQLite file, nor its directory (issue
// 15: doctor and send made ./data/blacksky.db).
func TestNoSQLiteFileIsErrNoDatabaseAndCreatesNothing(t *testing.T) {
	for _, mode := range []Mode{Existing, ReadOnly} {
		parent := t.TempDir()
		path := filepath.Join(parent, "data", "blacksky.db")
		_, err := Open(context.Background(), Options{SQLitePath: path, Mode: mode})
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), path) {
			t.Errorf("mode %d: Open = %v; want ErrNoDatabase naming %s", mode, err, path)
		}
		if got := files(t, parent); len(got) != 0 {
			t.Errorf("mode %d: Open created %v", mode, got)
		}
	}
}

// A database with no blacksky tables is no bot's: Existing refuses it;
// ReadOnly opens it and reports SchemaNone, without goose's table appearing.
func TestUnusedDatabaseIsRefusedAndLeftAsItIs(t *testing.T) {
	ctx := context.Background()
	for _, kind := range []Engine{SQLite, Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			opts := Options{PostgresURL: "", SQLitePath: filepath.Join(t.TempDir(), "blacksky.db")}
			if kind == Postgres {
				opts = Options{PostgresURL: testdb.PostgresURL(t)}
			} else {
				// Someone else's SQLite file, with a table of its own.
				other := mustOpen(t, opts)
				if _, err := other.DB().Exec("CREATE TABLE notes (x TEXT)"); err != nil {
					t.Fatal(err)
				}
				other.Close()
			}
			before := tables(t, opts)
			opts.Mode = Existing
			if _, err := Open(ctx, opts); !errors.Is(err, ErrNoDatabase) {
				t.Errorf("Existing: Open = %v; want ErrNoDatabase", err)
			}
			opts.Mode = ReadOnly
			st := mustOpen(t, opts)
			if state, err := st.Schema(ctx); err != nil || state != SchemaNone {
				t.Errorf("Schema = %v, %v; want SchemaNone", state, err)
			}
			st.Close()
			if after := tables(t, Options{PostgresURL: opts.PostgresURL, SQLitePath: opts.SQLitePath}); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("tables before %v, after %v: opening changed the database", before, after)
			}
		})
	}
}

// tables lists the tables of the database opts names.
func tables(t *testing.T, opts Options) []string {
	t.Helper()
	opts.Mode = ReadOnly
	st, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
	if st.Engine() == SQLite {
		q = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1"
	}
	return testdb.Strings(t, st.DB(), q)
}

// ReadOnly on a migrated SQLite file that no bot has open reads it without
// creating the -wal and -shm files a plain read-only open leaves behind,
// and nothing can be written through it; Existing opens it for writing.
func TestReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "blacksky.db")
	st := mustOpen(t, Options{SQLitePath: path})
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	st.Close()
	before := files(t, dir)
	ro := mustOpen(t, Options{SQLitePath: path, Mode: ReadOnly})
	if state, err := ro.Schema(ctx); err != nil || state != SchemaCurrent {
		t.Errorf("Schema = %v, %v; want SchemaCurrent", state, err)
	}
	jid := types.NewADJID("15550000001", 0, 7)
	if err := ro.BindAccount(ctx, "default", jid); err == nil {
		t.Error("a write through a ReadOnly store succeeded")
	}
	ro.Close()
	if after := files(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("files before %v, after %v", before, after)
	}
	rw := mustOpen(t, Options{SQLitePath: path, Mode: Existing})
	if err := rw.BindAccount(ctx, "default", jid); err != nil {
		t.Errorf("Existing store cannot write: %v", err)
	}
}

// On PostgreSQL, ReadOnly makes every transaction read-only.
func TestReadOnlyPostgresRefusesWrites(t *testing.T) {
	url := testdb.PostgresURL(t)
	st := mustOpen(t, Options{PostgresURL: url, Mode: ReadOnly})
	if _, err := st.DB().Exec("CREATE TABLE x (y INT)"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("CREATE TABLE through a ReadOnly store: %v; want a read-only transaction error", err)
	}
}

// Settings the driver refuses are ErrConfig, the operator's to fix, and
// their message does not quote the password.
func TestDriverRefusalIsErrConfig(t *testing.T) {
	_, err := Open(context.Background(), Options{PostgresURL: "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=soon"})
	if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "\n") {
		t.Errorf("Open = %v; want one line of ErrConfig without the password", err)
	}
}

// An unreachable server is one line with the reason once (pgx writes a
// line per address and per TLS and plain attempt), naming the database and
// host but not the password.
func TestUnreachablePostgresIsOneLine(t *testing.T) {
	_, err := Open(context.Background(), Options{PostgresURL: "postgres://u:secret@localhost:1/db"})
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || strings.Count(msg, "refused") != 1 || !strings.Contains(msg, `"db" on localhost:1`) || strings.Contains(msg, "secret") {
		t.Errorf("error %q; want one line naming db and localhost:1, the refusal once, no password", msg)
	}
}
