// Package testkit is what this project's tests share: a fresh migrated
// database of either kind (Store; StoreOptions and OpenStore when a test
// opens one database as several processes would: every test database is
// opened here, but the store's own tests, which test the opening), and
// in-process WhatsApp sandboxes that the real whatsmeow client in the same
// test process trusts. The built programs are run by the subpackage proc.
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

// Engines lists the database engines every storage test runs on.
var Engines = []store.Engine{store.SQLite, store.Postgres}

// Store returns a fresh, migrated database of kind, closed when t ends:
// the one way a test gets a database of its own.
// PostgreSQL follows testdb's rules: skipped loudly without it, failed in CI.
func Store(t testing.TB, kind store.Engine) *store.Store {
	t.Helper()
	st := OpenStore(t, StoreOptions(t, kind))
	Migrate(t, st)
	return st
}

// StoreOptions names a fresh, empty database of kind (a new SQLite file, or
// a new PostgreSQL database by testdb's rules), for a test that opens it
// more than once, as several processes would, or hands it to a program.
func StoreOptions(t testing.TB, kind store.Engine) store.Options {
	t.Helper()
	if kind == store.Postgres {
		return store.Options{PostgresURL: testdb.PostgresURL(t)}
	}
	return store.Options{SQLitePath: filepath.Join(t.TempDir(), "blacksky.db")}
}

// OpenStore opens the database opts name, as one more process would; it is
// closed when t ends (an earlier Close is harmless). It does not migrate.
func OpenStore(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open the test database: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Migrate brings st to this build's schema.
func Migrate(t testing.TB, st *store.Store) {
	t.Helper()
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate the test database: %v", err)
	}
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
	return build(ctx, dir, "blacksky")
}

// BuildSandbox builds cmd/blacksky-sandbox, the simulator's own program,
// into dir and returns the binary's path.
func BuildSandbox(ctx context.Context, dir string) (string, error) {
	return build(ctx, dir, "blacksky-sandbox")
}

func build(ctx context.Context, dir, name string) (string, error) {
	bin := filepath.Join(dir, name)
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/blacksky-bot/blacksky/cmd/"+name).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", name, err, out)
	}
	return bin, nil
}

// Binaries are the programs that tests and harnesses run as an operator
// would: the bot, and the simulator it is tested against.
type Binaries struct {
	Blacksky, Sandbox string
}

// MainWithBinaries is a TestMain that builds both programs once into bins,
// runs the tests and removes the binaries; it returns the exit code.
func MainWithBinaries(m *testing.M, bins *Binaries) int {
	dir, err := os.MkdirTemp("", "blacksky-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	if bins.Blacksky, err = BuildBlacksky(ctx, dir); err == nil {
		bins.Sandbox, err = BuildSandbox(ctx, dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// Go runs run (a Run(ctx) lifetime) in a goroutine until the returned stop
// is called or the test ends: stop ends run's context and waits for it to
// return, failing the test if it returns an error or has not returned
// within 30 s. stop may be called more than once.
func Go(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
