package sandbox

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mau.fi/libsignal/ecc"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types/events"
	"go.mau.fi/whatsmeow/util/keys"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// testRootPriv is shared by every test server because whatsmeow.WACertPubKey is process-global.
var testRootPriv = keys.NewKeyPair().Priv[:]

func TestMain(m *testing.M) {
	// The keep-alive knobs are globals too: set them once, before any client exists.
	whatsmeow.KeepAliveIntervalMin = 300 * time.Millisecond
	whatsmeow.KeepAliveIntervalMax = 600 * time.Millisecond
	whatsmeow.KeepAliveResponseDeadline = time.Second
	whatsmeow.KeepAliveMaxFailTime = 3 * time.Second
	// Every test server uses testRootPriv, so Trust.Apply never has to write this global
	// while other tests' clients read it: tests can run in parallel.
	whatsmeow.WACertPubKey = *keys.NewKeyPairFromPrivateKey([32]byte(testRootPriv)).Pub
	// libsignal initialises its package logger lazily and without a lock on first use:
	// do that once here, before parallel tests sign and verify concurrently.
	_ = ecc.CalculateSignature(ecc.NewDjbECPrivateKey([32]byte(testRootPriv)), []byte("warm-up"))
	os.Exit(m.Run())
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("SANDBOX_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

func startServer(t testing.TB, opts Options) *Server {
	t.Helper()
	opts.NoiseRootKey = testRootPriv
	if opts.CloseDelay == 0 {
		// 20 ms is enough on an idle machine; parallel builds on a small CI box need more margin.
		opts.CloseDelay = 100 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("new sandbox: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects whatsmeow events so tests can wait on them without sleeping.
type recorder struct {
	mu      sync.Mutex
	events  []any
	changed chan struct{}
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) handle(evt any) {
	r.mu.Lock()
	r.events = append(r.events, evt)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// mark returns a position; wait only looks at events recorded after it.
func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) since(pos int) []any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]any(nil), r.events[pos:]...)
}

func (r *recorder) wait(ctx context.Context, from int, match func(any) bool) (any, error) {
	for {
		r.mu.Lock()
		ch := r.changed
		for _, e := range r.events[from:] {
			if match(e) {
				r.mu.Unlock()
				return e, nil
			}
		}
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func waitEvent[T any](t testing.TB, ctx context.Context, r *recorder, from int) T {
	t.Helper()
	e, err := r.wait(ctx, from, func(e any) bool { _, ok := e.(T); return ok })
	if err != nil {
		var zero T
		t.Fatalf("waiting for %T: %v (got %s)", zero, err, describe(r.since(from)))
	}
	return e.(T)
}

func describe(evts []any) string {
	out := ""
	for _, e := range evts {
		out += fmt.Sprintf("%T ", e)
	}
	return out
}

type botClient struct {
	// serverClosed is set when the server ended the session for good (replaced,
	// logged out, banned ...): calling Disconnect then would race inside whatsmeow
	// (NoiseSocket.Stop writes FrameSocket.OnDisconnect while the read pump's Close reads it).
	serverClosed atomic.Bool
	cli          *whatsmeow.Client
	rec          *recorder
	container    *sqlstore.Container
	dbPath       string
}

func openContainer(t testing.TB, path string) *sqlstore.Container {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatalf("open client db: %v", err)
	}
	c := sqlstore.NewWithDB(db, "sqlite3", nil)
	if err := c.Upgrade(context.Background()); err != nil {
		t.Fatalf("upgrade client db: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newBot builds a real whatsmeow client on a sqlite store at dbPath (new when empty).
func newBot(t testing.TB, s *Server, dbPath string) *botClient {
	t.Helper()
	var clientLog waLog.Logger
	if os.Getenv("SANDBOX_TEST_CLIENT_LOG") != "" {
		clientLog = waLog.Stdout(t.Name(), "WARN", false)
	}
	return newBotWithLog(t, s, dbPath, clientLog)
}

// newBotWithLog is newBot with the client's logger.
func newBotWithLog(t testing.TB, s *Server, dbPath string, clientLog waLog.Logger) *botClient {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "bot.db")
	}
	container := openContainer(t, dbPath)
	dev, err := container.GetFirstDevice(context.Background())
	if err != nil {
		t.Fatalf("get device: %v", err)
	}
	cli := whatsmeow.NewClient(dev, clientLog)
	if err := s.Trust().Apply(cli); err != nil {
		t.Fatalf("apply trust: %v", err)
	}
	rec := newRecorder()
	cli.AddEventHandler(rec.handle)
	b := &botClient{cli: cli, rec: rec, container: container, dbPath: dbPath}
	t.Cleanup(func() {
		if !b.serverClosed.Load() {
			cli.Disconnect()
		}
	})
	return b
}

// pairQR links a fresh client by QR and waits until it is connected.
func pairQR(t testing.TB, s *Server) *botClient {
	t.Helper()
	return pairQRWith(t, s, nil)
}

// pairQRWith is pairQR with a hook to configure the client before it connects
// (client fields are read by whatsmeow goroutines, so they must not change later).
func pairQRWith(t testing.TB, s *Server, configure func(*whatsmeow.Client)) *botClient {
	t.Helper()
	b := newBot(t, s, "")
	if configure != nil {
		configure(b.cli)
	}
	ctx := testCtx(t, 20*time.Second)
	qrs, err := b.cli.GetQRChannel(ctx)
	if err != nil {
		t.Fatalf("qr channel: %v", err)
	}
	if err := b.cli.Connect(); err != nil {
		t.Fatalf("connect: %v", err)
	}
	var code string
	select {
	case item := <-qrs:
		if item.Event != "code" {
			t.Fatalf("first qr item: %+v", item)
		}
		code = item.Code
	case <-ctx.Done():
		t.Fatal("no QR code")
	}
	if err := s.ScanQR(ctx, code); err != nil {
		t.Fatalf("scan qr: %v", err)
	}
	waitEvent[*events.PairSuccess](t, ctx, b.rec, 0)
	waitEvent[*events.Connected](t, ctx, b.rec, 0)
	// The first login brings the phone's app state key share (appstate.go), itself an
	// events.Message: once it is acknowledged, a test's later mark cannot catch it.
	waitNothingPending(t, ctx, s)
	// And the fetch of app state it starts: a test's fault must not hit its queries.
	waitAppStateSynced(t, ctx, b)
	return b
}

func whatsmeowExtraID(id string) whatsmeow.SendRequestExtra {
	return whatsmeow.SendRequestExtra{ID: id}
}
