package lease

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// twoProcesses opens the same database twice, as two processes would.
func twoProcesses(t *testing.T, kind store.Engine) (*store.Store, *store.Store) {
	opts := testkit.StoreOptions(t, kind)
	open := func() *store.Store {
		st := testkit.OpenStore(t, opts)
		testkit.Migrate(t, st)
		return st
	}
	return open(), open()
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestOneHolderAndHandOver(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := ctxFor(t)
			a, b := twoProcesses(t, kind)
			la, err := TryAcquire(ctx, a, "default", "process-a", Options{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := TryAcquire(ctx, b, "default", "process-b", Options{}); !errors.Is(err, ErrHeld) {
				t.Fatalf("second TryAcquire = %v, want ErrHeld", err)
			}
			if lo, err := TryAcquire(ctx, b, "other-session", "process-b", Options{}); err != nil {
				t.Fatalf("another session's lease: %v", err)
			} else {
				lo.Release()
			}
			h, ok, err := CurrentHolder(ctx, b, "default")
			if err != nil || !ok || !contains(h.ID, "process-a") {
				t.Fatalf("CurrentHolder = %+v, %v, %v; want process-a", h, ok, err)
			}

			var toldHolder Holder
			got := make(chan *Lease, 1)
			go func() {
				l, err := Acquire(ctx, b, "default", "process-b", 10*time.Millisecond, Options{}, func(h Holder) { toldHolder = h })
				if err != nil {
					t.Error(err)
				}
				got <- l
			}()
			// The standby must not get the lease while a holds it.
			select {
			case <-got:
				t.Fatal("standby took a held lease")
			case <-time.After(100 * time.Millisecond):
			}
			released := time.Now()
			if err := la.Release(); err != nil {
				t.Fatal(err)
			}
			lb := <-got
			t.Logf("standby took over %v after release", time.Since(released).Round(time.Millisecond))
			if !contains(toldHolder.ID, "process-a") {
				t.Errorf("standby was told the holder is %+v", toldHolder)
			}
			lb.Release()
		})
	}
}

func TestPostgresLeaseLostWhenConnectionDies(t *testing.T) {
	ctx := ctxFor(t)
	a, b := twoProcesses(t, store.Postgres)
	l, err := TryAcquire(ctx, a, "default", "doomed", Options{Check: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// The database drops the holder's connection (a failover, a network cut).
	if _, err := b.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'blacksky doomed'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Lost():
	case <-ctx.Done():
		t.Fatal("the holder never noticed that its lease was gone")
	}
	lb, err := TryAcquire(ctx, b, "default", "successor", Options{})
	if err != nil {
		t.Fatalf("lease not free after the holder's connection died: %v", err)
	}
	lb.Release()
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// A database that is down (restarting, failing over) is no reason to give
// up the wait: Acquire reports the error and keeps trying until ctx ends.
func TestAcquireKeepsTryingThroughDatabaseErrors(t *testing.T) {
	_, down := twoProcesses(t, store.Postgres)
	down.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	errs := 0
	_, err := Acquire(ctx, down, "default", "patient", 20*time.Millisecond, Options{OnError: func(error) { errs++ }}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || errs < 2 {
		t.Fatalf("Acquire = %v after %d reported errors; want it to keep trying until the deadline", err, errs)
	}
}

// acquireAfterLoss has b take the lease that a holds but has lost without
// noticing yet, and checks what the package promises: b's TryAcquire
// returns only after a was told (Lost), and says that it waited.
func acquireAfterLoss(t *testing.T, ctx context.Context, a *Lease, b *store.Store, opts Options) *Lease {
	t.Helper()
	var waited time.Duration
	opts.OnTakeover = func(_ string, d time.Duration) { waited = d }
	var lb *Lease
	var err error
	for {
		lb, err = TryAcquire(ctx, b, "default", "process-b", opts)
		if !errors.Is(err, ErrHeld) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the standby never got the lease")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Lost():
	default:
		t.Fatal("the new holder got the lease while the old one had not been told it lost it")
	}
	if waited != TakeoverDelay(opts.check()) {
		t.Errorf("the new holder waited %v; want TakeoverDelay %v", waited, TakeoverDelay(opts.check()))
	}
	return lb
}

// Issue 13, case 1: deleting or replacing the SQLite lock file let a
// standby lock a new file while the holder kept its lock on the old one and
// never checked again: two holders for good.
func TestSQLiteLeaseLostWhenLockFileReplaced(t *testing.T) {
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			ctx := ctxFor(t)
			a, b := twoProcesses(t, store.SQLite)
			opts := Options{Check: 50 * time.Millisecond}
			la, err := TryAcquire(ctx, a, "default", "process-a", opts)
			if err != nil {
				t.Fatal(err)
			}
			path := lockPath(a.SQLitePath(), "default")
			if how == "deleted" {
				err = os.Remove(path)
			} else {
				tmp := path + ".new"
				if err = os.WriteFile(tmp, nil, 0o600); err == nil {
					err = os.Rename(tmp, path)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			lb := acquireAfterLoss(t, ctx, la, b, opts)
			if err := la.Release(); err != nil {
				t.Errorf("release after the loss: %v", err)
			}
			// The old holder's release leaves the new holding alone.
			if h, ok, _ := CurrentHolder(ctx, b, "default"); !ok || h.ID != "process-b" {
				t.Errorf("holder after the old one released = %+v, %v; want process-b", h, ok)
			}
			if _, err := TryAcquire(ctx, a, "default", "process-a", opts); !errors.Is(err, ErrHeld) {
				t.Fatalf("the old holder took the lease again: %v", err)
			}
			lb.Release()
		})
	}
}

// Issue 13, case 2: when only the holder's lease connection dies, the
// standby took over and connected before the holder noticed.
func TestPostgresTakeoverWaitsForTheOldHolder(t *testing.T) {
	ctx := ctxFor(t)
	a, b := twoProcesses(t, store.Postgres)
	opts := Options{Check: 50 * time.Millisecond}
	la, err := TryAcquire(ctx, a, "default", "doomed", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE application_name = 'blacksky doomed'`); err != nil {
		t.Fatal(err)
	}
	lb := acquireAfterLoss(t, ctx, la, b, opts)
	la.Release()
	lb.Release()
}

// A lease given back is taken at once: the wait is only for a holder that
// may still be running.
func TestCleanHandOverDoesNotWait(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := ctxFor(t)
			a, b := twoProcesses(t, kind)
			opts := Options{OnTakeover: func(prev string, _ time.Duration) { t.Errorf("waited for %s, which gave the lease back", prev) }}
			la, err := TryAcquire(ctx, a, "default", "process-a", opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := la.Release(); err != nil {
				t.Fatal(err)
			}
			lb, err := TryAcquire(ctx, b, "default", "process-b", opts)
			if err != nil {
				t.Fatal(err)
			}
			lb.Release()
		})
	}
}

// A check that hangs past its deadline (pgx waits to cancel a query on a
// connection that stopped answering) must not delay the loss beyond 2
// intervals after the last good check began: a new holder waits no longer.
func TestHangingCheckLosesTheLeaseInTime(t *testing.T) {
	const interval = 50 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	var calls int
	l := newLease("t", func(bool) error { return nil })
	start := time.Now()
	go l.watch(interval, func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return nil
		}
		<-release // hangs whatever its context says
		return nil
	})
	select {
	case <-l.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("a hanging check kept the lease for good")
	}
	// The deadline is measured, not asserted (timers on a busy machine);
	// what matters is that the loss did not wait for the check.
	t.Logf("lost %v after the watch began (interval %v)", time.Since(start).Round(time.Millisecond), interval)
	close(l.stop)
	<-l.done
}

// The chaos run found two processes connected at once while PostgreSQL
// dropped every connection again and again: a new holder's lock died while
// it waited for the old holder, and it went on to connect after the wait,
// beside the next process that took the lock. A lock lost during the wait
// is not a lease.
func TestLeaseLostDuringTheTakeoverWaitIsNotALease(t *testing.T) {
	ctx := ctxFor(t)
	a, b := twoProcesses(t, store.Postgres)
	kill := func(name string) error {
		_, err := a.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE application_name = $1`, "blacksky "+name)
		return err
	}
	la, err := TryAcquire(ctx, a, "default", "first", Options{Check: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Release()
	if err := kill("first"); err != nil {
		t.Fatal(err)
	}
	// The second process's lock dies as soon as it begins to wait.
	opts := Options{Check: 50 * time.Millisecond, OnTakeover: func(string, time.Duration) {
		go func() {
			if err := kill("second"); err != nil {
				t.Error(err)
			}
		}()
	}}
	for {
		var lb *Lease
		lb, err = TryAcquire(ctx, b, "default", "second", opts)
		if err == nil {
			lb.Release()
			t.Fatal("TryAcquire returned a lease whose lock died while it waited")
		}
		if !errors.Is(err, ErrHeld) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("the lock never came free")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !strings.Contains(err.Error(), "lost while waiting") {
		t.Errorf("TryAcquire = %v; want the lease lost while waiting", err)
	}
}
