// Package testkit is what this project's tests share: a fresh migrated
// database of either kind, and in-process WhatsApp sandboxes that the real
// whatsmeow client in the same test process trusts.
package testkit

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/util/keys"

	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testdb"
)

// Kinds lists the database engines every storage test runs on.
var Kinds = []store.Kind{store.SQLite, store.Postgres}

// Store returns a fresh, migrated database of kind, closed when t ends.
// PostgreSQL follows testdb's rules: skipped loudly without it, failed in CI.
func Store(t testing.TB, kind store.Kind) *store.Store {
	t.Helper()
	opts := store.Options{SQLitePath: filepath.Join(t.TempDir(), "blacksky.db")}
	if kind == store.Postgres {
		opts = store.Options{PostgresURL: testdb.PostgresURL(t)}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// noiseRoot is the one noise root of this test process: whatsmeow trusts a
// single process-global key, so every sandbox here must use the same one.
var noiseRoot = sync.OnceValue(keys.NewKeyPair)

// InitProcess prepares the process-wide state of whatsmeow and libsignal
// before any client exists; call it from TestMain.
func InitProcess() {
	logging.InstallSignalLogger(slog.New(slog.DiscardHandler))
	whatsmeow.WACertPubKey = *noiseRoot().Pub
}

// Sandbox starts a WhatsApp simulator this process's clients trust; it is
// closed when t ends.
func Sandbox(t testing.TB, opts sandbox.Options) *sandbox.Server {
	t.Helper()
	opts.NoiseRootKey = noiseRoot().Priv[:]
	srv, err := sandbox.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// WaitFor polls cond until it holds, failing t after a generous deadline:
// tests wait on conditions, never on time.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// BuildBlacksky builds cmd/blacksky into dir and returns the binary's path,
// for the tests and tools that run the bot as an operator would.
func BuildBlacksky(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "blacksky")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/blacksky-bot/blacksky/cmd/blacksky").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build blacksky: %w\n%s", err, out)
	}
	return bin, nil
}

// MainWithBlacksky is a TestMain that builds the binary once into *path,
// runs the tests and removes the binary; it returns the exit code.
func MainWithBlacksky(m *testing.M, path *string) int {
	dir, err := os.MkdirTemp("", "blacksky-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *path, err = BuildBlacksky(context.Background(), dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
