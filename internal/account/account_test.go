package account

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/lease"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

func TestMain(m *testing.M) {
	testkit.InitProcess()
	os.Exit(m.Run())
}

// A holder whose database connection breaks must drop its WhatsApp
// connection at once (another process may take the account now), then
// compete for the lease again.
func TestLostLeaseStopsTheConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testkit.Sandbox(t, sandbox.Options{})
	st := testkit.Store(t, store.Postgres)

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

// A process waiting as a standby says so once, with where to read why.
func TestStandbyLinePointsToTheGuide(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := testkit.Sandbox(t, sandbox.Options{})
	st := testkit.Store(t, store.Postgres)
	runner := func(name string, logs *testkit.Logs) *Runner {
		opts := Options{Store: st, SessionID: "s", HolderID: name, Poll: 50 * time.Millisecond,
			Lease:      lease.Options{Check: 50 * time.Millisecond},
			Supervisor: supervisor.Options{Configure: srv.Trust().Apply}}
		if logs != nil {
			opts.Logger = logs.Logger()
		}
		return New(opts)
	}
	holder := runner("holder", nil)
	logs := testkit.NewLogs()
	standby := runner("standby", logs)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 2)
	go func() { done <- holder.Run(runCtx) }()
	defer func() { stop(); <-done; <-done }()
	if err := holder.WaitFor(ctx, func(s supervisor.Status, _ supervisor.Pairing) bool {
		return s.Holder == "holder" && s.State != supervisor.Standby
	}); err != nil {
		t.Fatal(err)
	}
	go func() { done <- standby.Run(runCtx) }()
	testkit.WaitFor(t, "the standby's line", func() bool { return logs.Count(slog.LevelWarn, "hot standby") > 0 })
	if line := logs.Lines(slog.LevelWarn, "hot standby")[0]; line.Attrs["help"] != troubleshoot.Lease.URL() {
		t.Errorf("standby line %+v; want help=%s", line, troubleshoot.Lease.URL())
	}
}
