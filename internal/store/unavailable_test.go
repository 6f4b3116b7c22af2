package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite"
)

func TestIsUnavailable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"PostgreSQL unreachable", &pgconn.ConnectError{}, true},
		{"PostgreSQL shutting down", &pgconn.PgError{Code: "57P01"}, true},
		{"PostgreSQL disk full", &pgconn.PgError{Code: "53100"}, true},
		{"PostgreSQL connection failure", &pgconn.PgError{Code: "08006"}, true},
		{"a deadline", fmt.Errorf("enqueue: %w", context.DeadlineExceeded), true},
		// What pgx says when the server dropped the connection under a query.
		{"PostgreSQL connection closed", fmt.Errorf("read account: %w", pgconn.ErrConnClosed), true},
		{"PostgreSQL connection cut mid-reply", fmt.Errorf("failed to receive message: %w", io.ErrUnexpectedEOF), true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax error", &pgconn.PgError{Code: "42601"}, false},
		{"no rows", sql.ErrNoRows, false},
		{"anything else", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := IsUnavailable(fmt.Errorf("wrapped: %w", tt.err)); got != tt.want {
			t.Errorf("%s: IsUnavailable = %v, want %v", tt.name, got, tt.want)
		}
	}
	if IsUnavailable(nil) {
		t.Error("nil is unavailable")
	}
}

// A real SQLite "database is locked" (another process holds the write lock
// past the busy timeout) is a "not now".
func TestSQLiteBusyIsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	holder, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	ctx := context.Background()
	conn, err := holder.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "CREATE TABLE t (x); BEGIN IMMEDIATE; INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	_, err = other.ExecContext(ctx, "INSERT INTO t VALUES (2)")
	if err == nil {
		t.Fatal("a second writer got the lock")
	}
	if !IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = false; want true", err)
	}
	conn.ExecContext(ctx, "ROLLBACK")
}
