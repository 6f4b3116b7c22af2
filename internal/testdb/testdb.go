// Package testdb gives tests a fresh PostgreSQL database of their own, or
// explains loudly why they cannot have one, and the harnesses the same
// database without a test (Create). It opens no store: a migrated store of
// either kind is internal/testkit's Store (testdb stays free of
// internal/store so that the store's own tests can use it).
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	neturl "net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvVar names the variable holding the admin URL of the test PostgreSQL.
const EnvVar = "BLACKSKY_TEST_POSTGRES"

// PostgresURL creates an empty database for the test and returns its URL;
// the database is dropped when the test ends. Without EnvVar the test is
// skipped, except under CI (CI=true), where a missing PostgreSQL fails it.
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvVar)
	if admin == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI must test against PostgreSQL", EnvVar)
		}
		t.Skipf("SKIPPING PostgreSQL test: set %s=postgres://postgres@127.0.0.1:5432/postgres to run it", EnvVar)
	}
	url, drop, err := Create(context.Background(), admin, "blacksky_test_")
	if err != nil {
		t.Fatalf("%s: %v", EnvVar, err)
	}
	t.Cleanup(drop)
	return url
}

// Create makes an empty database, named prefix and a random suffix, on the
// server at admin, and returns its URL and a function that drops it. It is
// PostgresURL without a test, for the harnesses; drop retries for a while,
// since a harness may have restarted the server under the database.
func Create(ctx context.Context, admin, prefix string) (url string, drop func(), err error) {
	u, err := neturl.Parse(admin)
	if err != nil {
		return "", nil, fmt.Errorf("parse the admin URL: %w", err)
	}
	name := prefix + randomHex(6)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := execAdmin(ctx, admin, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	drop = func() {
		for range 10 {
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := execAdmin(dctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			cancel()
			if err == nil {
				return
			}
			// Not a synchronisation: the server is coming back, and there
			// is nothing to wait on but time.
			time.Sleep(500 * time.Millisecond)
		}
	}
	return u.String(), drop, nil
}

// execAdmin runs one statement on a connection of its own, closed after,
// so that no test holds an admin connection while it runs.
func execAdmin(ctx context.Context, admin, stmt string) error {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return fmt.Errorf("open the admin database: %w", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("PostgreSQL is unreachable: %w", err)
	}
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return err
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Strings runs query on db and returns its one text column, failing the
// test on any error (the names of tables, for instance).
func Strings(t testing.TB, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
