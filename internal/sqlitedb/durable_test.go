package sqlitedb

import (
	"context"
	"path/filepath"
	"testing"
)

// A commit marked DurableCommit runs with synchronous=FULL, and the
// connection goes back to its own level afterwards.
func TestDurableCommit(t *testing.T) {
	db := Open("file:"+filepath.Join(t.TempDir(), "b.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate", Options{})
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	level := func() int {
		t.Helper()
		var n int
		if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := conn.ExecContext(ctx, "CREATE TABLE t (x)"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.BeginTx(DurableCommit(ctx), nil)
	if err != nil {
		t.Fatal(err)
	}
	var inside int
	if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&inside); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if n := StatsOf(db).DurableCommits; n != 1 {
		t.Errorf("DurableCommits = %d; want 1", n)
	}
	if inside != synchronousFull {
		t.Errorf("synchronous inside the durable transaction = %d; want FULL (2)", inside)
	}
	if got := level(); got != 1 {
		t.Errorf("synchronous after it = %d; want NORMAL (1) again", got)
	}
	tx, err = conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&inside); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	if inside != 1 {
		t.Errorf("synchronous in an ordinary transaction = %d; want NORMAL (1)", inside)
	}
}
