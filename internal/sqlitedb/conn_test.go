package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"path/filepath"
	"sync"
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

// countingConnector opens connections that count their prepares.
type countingConnector struct {
	dsn  string
	size int
	d    counting
	w    *writer
}

func (c *countingConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.d.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return newConn(conn, c.size, c.w, newFiles("")), nil
}

func (c *countingConnector) Driver() driver.Driver { return c.d }

func open(t *testing.T, size int) (*sql.DB, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	dsn := "file:" + filepath.Join(t.TempDir(), "t.db") + "?_pragma=journal_mode(WAL)"
	db := sql.OpenDB(&countingConnector{dsn: dsn, size: size, d: counting{&sqlite.Driver{}, &n}, w: newWriter()})
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

// TestWritersQueue has many goroutines write at once, in transactions and
// alone, to a database whose busy_timeout is 0: SQLite would refuse all but
// one of any two writers that meet, so every write succeeding shows that
// they took turns.
func TestWritersQueue(t *testing.T) {
	dsn := "file:" + filepath.Join(t.TempDir(), "w.db") + "?_txlock=immediate&_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)"
	db := Open(dsn, Options{})
	defer db.Close()
	if _, err := db.Exec("CREATE TABLE n (g INTEGER, i INTEGER)"); err != nil {
		t.Fatal(err)
	}
	const goroutines, each = 8, 40
	errs := make(chan error, goroutines*each)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if i%2 == 0 {
					_, err := db.Exec("INSERT INTO n (g, i) VALUES ($1, $2)", g, i)
					errs <- err
					continue
				}
				tx, err := db.Begin()
				if err == nil {
					var max sql.NullInt64
					if err = tx.QueryRow("SELECT max(i) FROM n WHERE g = $1", g).Scan(&max); err == nil {
						_, err = tx.Exec("INSERT INTO n (g, i) VALUES ($1, $2)", g, i)
					}
					if err == nil {
						err = tx.Commit()
					} else {
						tx.Rollback()
					}
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent write failed: %v", err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM n").Scan(&n); err != nil || n != goroutines*each {
		t.Fatalf("%d rows, %v; want %d", n, err, goroutines*each)
	}
}

func TestIsWrite(t *testing.T) {
	tests := []struct {
		query string
		write bool
	}{
		{"SELECT 1", false},
		{"  select * from t", false},
		{"PRAGMA quick_check", false},
		{"INSERT INTO t VALUES (1)", true},
		{"\n\tUPDATE t SET x = 1", true},
		{"DELETE FROM t", true},
		{"REPLACE INTO t VALUES (1)", true},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", true},
		{"-- comment\nSELECT 1", false},
		{"/* c */ INSERT INTO t VALUES (1)", true},
		{"CREATE TABLE t (x)", true},
		{"(SELECT 1)", false},
	}
	for _, tt := range tests {
		if got := isWrite(tt.query); got != tt.write {
			t.Errorf("isWrite(%q) = %v; want %v", tt.query, got, tt.write)
		}
	}
}
