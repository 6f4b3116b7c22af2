package stmtcache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"sync/atomic"
	"testing"

	"modernc.org/sqlite"
)

// counting counts the statements the wrapped driver prepares.
type counting struct {
	driver.Driver
	prepares *atomic.Int64
}

func (d counting) Open(dsn string) (driver.Conn, error) {
	c, err := d.Driver.Open(dsn)
	return countingConn{c.(sqliteConn), d.prepares}, err
}

type sqliteConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.ConnBeginTx
}

type countingConn struct {
	sqliteConn
	prepares *atomic.Int64
}

func (c countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.prepares.Add(1)
	return c.sqliteConn.PrepareContext(ctx, q)
}

func open(t *testing.T, size int) (*sql.DB, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	dsn := "file:" + filepath.Join(t.TempDir(), "t.db") + "?_pragma=journal_mode(WAL)"
	db := sql.OpenDB(&Connector{Base: counting{&sqlite.Driver{}, &n}, DSN: dsn, Size: size})
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	db.SetMaxOpenConns(1) // one connection, so one cache to count
	if _, err := db.Exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT); CREATE TABLE other (x INTEGER);"); err != nil {
		t.Fatal(err)
	}
	return db, &n
}

func TestStatementsArePreparedOnce(t *testing.T) {
	db, prepares := open(t, 8)
	before := prepares.Load()
	for i := range 100 {
		if _, err := db.Exec("INSERT INTO kv (k, v) VALUES ($1, $2)", i, "v"); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := db.QueryRow("SELECT v FROM kv WHERE k = $1", i).Scan(&v); err != nil || v != "v" {
			t.Fatalf("row %d = %q, %v", i, v, err)
		}
	}
	if got := prepares.Load() - before; got != 2 {
		t.Fatalf("200 calls of 2 statements prepared %d statements; want 2", got)
	}
}

func TestScriptsBypassTheCache(t *testing.T) {
	db, _ := open(t, 8)
	// open ran a two-statement script; both tables must exist.
	for _, table := range []string{"kv", "other"} {
		var n int
		if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
			t.Fatalf("table %s: %v", table, err)
		}
	}
}

func TestSameQueryWhileItsRowsAreOpen(t *testing.T) {
	db, _ := open(t, 8)
	for i := range 3 {
		if _, err := db.Exec("INSERT INTO kv (k, v) VALUES ($1, $2)", i, string(rune('a'+i))); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	const q = "SELECT k, v FROM kv WHERE k >= $1 ORDER BY k"
	outer, err := tx.Query(q, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for outer.Next() {
		var k int
		var v string
		if err := outer.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		// The same statement again on the same connection, mid-iteration.
		var inner string
		if err := tx.QueryRow(q, k).Scan(&k, &inner); err != nil {
			t.Fatal(err)
		}
		got = append(got, v+inner)
	}
	if err := outer.Close(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"aa", "bb", "cc"}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("outer rows with inner queries = %v; want %v", got, want)
	}
}

func TestEviction(t *testing.T) {
	tests := []struct {
		name string
		size int
	}{
		{"disabled", 0},
		{"smaller than the working set", 2},
		{"larger than the working set", 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := open(t, tt.size)
			if _, err := db.Exec("INSERT INTO kv (k, v) VALUES (1, 'one')"); err != nil {
				t.Fatal(err)
			}
			queries := []string{"SELECT v FROM kv WHERE k = $1", "SELECT v || '' FROM kv WHERE k = $1", "SELECT lower(v) FROM kv WHERE k = $1"}
			for i := range 30 {
				var v string
				if err := db.QueryRow(queries[i%len(queries)], 1).Scan(&v); err != nil || v != "one" {
					t.Fatalf("query %d = %q, %v", i, v, err)
				}
			}
		})
	}
}
