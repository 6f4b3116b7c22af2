package account

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/util/keys"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/lease"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testdb"
)

var rootKey = keys.NewKeyPair()

func TestMain(m *testing.M) {
	logging.InstallSignalLogger(slog.New(slog.DiscardHandler))
	whatsmeow.WACertPubKey = *rootKey.Pub
	os.Exit(m.Run())
}

// A holder whose database connection breaks must drop its WhatsApp
// connection at once (another process may take the account now), then
// compete for the lease again.
func TestLostLeaseStopsTheConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := sandbox.New(sandbox.Options{NoiseRootKey: rootKey.Priv[:]})
	if err == nil {
		err = srv.Start(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Options{PostgresURL: testdb.PostgresURL(t)})
	if err == nil {
		err = st.Migrate(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	r := New(Options{
		Store: st, SessionID: "s", HolderID: "victim", Poll: 50 * time.Millisecond,
		Lease: lease.Options{Check: 50 * time.Millisecond},
		Supervisor: supervisor.Options{
			Configure: srv.Trust().Apply,
			Backoff:   backoff.Policy{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		},
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() {
		srv.Close()
		stop()
		<-done
	}()

	if err := r.WaitFor(ctx, func(_ supervisor.Status, p supervisor.Pairing) bool { return p.QR != "" }); err != nil {
		t.Fatal(err)
	}
	if err := srv.ScanQR(ctx, r.Pairing().QR); err != nil {
		t.Fatal(err)
	}
	connected := func(st supervisor.Status, _ supervisor.Pairing) bool { return st.State == supervisor.Connected }
	if err := r.WaitFor(ctx, connected); err != nil {
		t.Fatal(err)
	}
	if h := r.Status().Holder; h != "victim" {
		t.Errorf("holder = %q", h)
	}

	mark, lostAt := srv.LastSeq(), time.Now()
	if _, err := st.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'blacksky victim'`); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.WaitEvent(ctx, sandbox.EventConnClosed, mark); err != nil {
		t.Fatalf("the WhatsApp connection stayed open after the lease was lost: %v", err)
	}
	// Nobody else wants the account, so this process takes it back.
	if err := r.WaitFor(ctx, func(st supervisor.Status, p supervisor.Pairing) bool {
		return connected(st, p) && st.Since.After(lostAt)
	}); err != nil {
		t.Fatalf("did not reconnect after retaking the lease: %v (state %s)", err, r.Status().State)
	}
}
