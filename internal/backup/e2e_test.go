package backup

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"

	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

func TestMain(m *testing.M) {
	testkit.InitProcess()
	os.Exit(m.Run())
}

// eventLog records a client's events so the test waits on them, not on time.
type eventLog struct {
	mu      sync.Mutex
	seen    []any
	changed chan struct{}
}

func (l *eventLog) handle(e any) {
	l.mu.Lock()
	l.seen = append(l.seen, e)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

func waitFor[T any](t *testing.T, ctx context.Context, l *eventLog, match func(T) bool) T {
	t.Helper()
	for {
		l.mu.Lock()
		ch := l.changed
		for _, e := range l.seen {
			if v, ok := e.(T); ok && (match == nil || match(v)) {
				l.mu.Unlock()
				return v
			}
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			var zero T
			l.mu.Lock()
			defer l.mu.Unlock()
			t.Fatalf("no %T event: %v; saw %s", zero, ctx.Err(), describe(l.seen))
		}
	}
}

func describe(es []any) string {
	out := ""
	for _, e := range es {
		out += fmt.Sprintf("%T ", e)
	}
	return out
}

func connect(t *testing.T, srv *sandbox.Server, st *store.Store) (*whatsmeow.Client, *eventLog) {
	t.Helper()
	dev, err := st.Device(context.Background(), testSession)
	if err != nil {
		t.Fatal(err)
	}
	// whatsmeow's own log, shown only when the package fails: one run in a
	// loaded CI saw PairSuccess but no Connected within the test's budget.
	cli := whatsmeow.NewClient(dev, waLog.Stdout(t.Name(), "INFO", false))
	if err := srv.Trust().Apply(cli); err != nil {
		t.Fatal(err)
	}
	l := &eventLog{changed: make(chan struct{})}
	cli.AddEventHandler(l.handle)
	return cli, l
}

// The acceptance test of the issue: a bot paired on SQLite loses its
// disk, comes back on an empty PostgreSQL (or SQLite without one) with
// only a backup, and talks to a contact again without pairing.
func TestRestoredSessionConnectsWithoutPairing(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	srv := testkit.Sandbox(t, sandbox.Options{})
	alice, err := srv.AddContact("4915112345678")
	if err != nil {
		t.Fatal(err)
	}

	// Pair on SQLite and exchange messages, so there are Signal sessions.
	st1 := openStore(t, store.SQLite)
	cli, log1 := connect(t, srv, st1)
	qrs, err := cli.GetQRChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := srv.ScanQR(ctx, (<-qrs).Code); err != nil {
		t.Fatal(err)
	}
	paired := waitFor[*events.PairSuccess](t, ctx, log1, nil)
	if err := st1.BindAccount(ctx, testSession, paired.ID); err != nil {
		t.Fatal(err)
	}
	waitFor[*events.Connected](t, ctx, log1, nil)
	// The contact writes first, from its LID, as current WhatsApp does.
	id, err := alice.Send(ctx, "hello before")
	if err != nil {
		t.Fatal(err)
	}
	first := waitFor(t, ctx, log1, func(m *events.Message) bool { return m.Info.ID == id })
	chat := first.Info.Chat
	if _, err := cli.SendMessage(ctx, chat, &waE2E.Message{Conversation: proto.String("reply before")}); err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 1 }); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	m1, _ := newManager(t, st1, dir, testPass)
	if _, err := m1.Backup(ctx); err != nil {
		t.Fatal(err)
	}
	cli.Disconnect()

	kind := store.SQLite
	if os.Getenv("BLACKSKY_TEST_POSTGRES") != "" {
		kind = store.Postgres
	}
	st2 := openStore(t, kind)
	m2, _ := newManager(t, st2, dir, testPass)
	res, err := m2.RestoreIfMissing(ctx)
	if err != nil || !res.Restored {
		t.Fatalf("RestoreIfMissing = %+v, %v", res, err)
	}
	cli2, log2 := connect(t, srv, st2)
	if cli2.Store.ID == nil || *cli2.Store.ID != paired.ID {
		t.Fatalf("restored device is %v, want %v", cli2.Store.ID, paired.ID)
	}
	if err := cli2.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli2.Disconnect)
	waitFor[*events.Connected](t, ctx, log2, nil)

	resp, err := cli2.SendMessage(ctx, chat, &waE2E.Message{Conversation: proto.String("after restore")})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 2 }); err != nil {
		t.Fatal(err)
	}
	// The restored Signal session is used: no new pre-key message.
	if got := alice.Inbox()[1]; got.ID != resp.ID || got.Text != "after restore" || got.Type != "msg" {
		t.Fatalf("contact got %+v", got)
	}
	id, err = alice.Send(ctx, "reply after")
	if err != nil {
		t.Fatal(err)
	}
	msg := waitFor(t, ctx, log2, func(m *events.Message) bool { return m.Info.ID == id })
	if msg.Message.GetConversation() != "reply after" {
		t.Fatalf("bot got %q", msg.Message.GetConversation())
	}
	log2.mu.Lock()
	defer log2.mu.Unlock()
	for _, e := range log2.seen {
		if _, ok := e.(*events.QR); ok {
			t.Fatal("the restored bot was asked to pair")
		}
	}
}
