package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type testDB struct {
	t *testing.T
	*sql.DB
}

func (d *testDB) exec(query string) {
	d.t.Helper()
	if _, err := d.ExecContext(context.Background(), query); err != nil {
		d.t.Fatalf("%s: %v", query, err)
	}
}

func openIn(t *testing.T, path string) *testDB {
	t.Helper()
	db := Open("file:"+path+"?_pragma=journal_mode(WAL)&_txlock=immediate", Options{})
	t.Cleanup(func() { db.Close() })
	return &testDB{t: t, DB: db}
}

// A deleted data directory: SQLite goes on writing into the unlinked file,
// and all of it is gone when the process ends. Such writes must fail.
func TestWriteIntoADeletedFileFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	db := openIn(t, filepath.Join(dir, "b.db"))
	db.exec("CREATE TABLE t (x)")
	db.exec("INSERT INTO t VALUES (1)")
	if err := Health(db.DB); err != nil {
		t.Fatalf("Health of a good database: %v", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "INSERT INTO t VALUES (2)"); !errors.Is(err, ErrFileGone) {
		t.Errorf("write after the directory was deleted: %v; want ErrFileGone", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	tx.ExecContext(ctx, "INSERT INTO t VALUES (3)")
	if err := tx.Commit(); !errors.Is(err, ErrFileGone) {
		t.Errorf("commit after the directory was deleted: %v; want ErrFileGone", err)
	}
	if err := Health(db.DB); !errors.Is(err, ErrFileGone) {
		t.Errorf("Health: %v; want ErrFileGone", err)
	}
}

// Damage SQLite reports once is remembered: it does not heal.
func TestHealthRemembersDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.db")
	good := openIn(t, path)
	good.exec("CREATE TABLE t (x)")
	good.Close()
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	if err := os.WriteFile(path, make([]byte, 8192), 0o600); err != nil { // zeroed header: not a database
		t.Fatal(err)
	}
	db := openIn(t, path)
	if _, err := db.ExecContext(context.Background(), "SELECT * FROM t"); err == nil {
		t.Fatal("read a damaged file without an error")
	}
	if err := Health(db.DB); err == nil {
		t.Error("Health is nil after SQLite reported damage")
	}
}
