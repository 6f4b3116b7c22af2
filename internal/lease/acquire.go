package lease

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/blacksky-bot/blacksky/internal/filelock"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// Options tunes how a lease is kept.
type Options struct {
	// Check is how often the holder verifies that its lock still counts
	// (LEASE_INTERVAL, 1 s by default); it stops within twice this of a
	// loss, and a new holder waits TakeoverDelay(Check).
	Check time.Duration
	// OnError, if set, hears of database errors while Acquire waits; it
	// keeps trying, since a database restart is no reason to stop.
	OnError func(error)
	// OnTakeover, if set, hears that the last holder (named) did not give
	// the lease back, and that TryAcquire waits d before it returns.
	OnTakeover func(previous string, d time.Duration)
}

func (o Options) check() time.Duration {
	if o.Check <= 0 {
		return time.Second
	}
	return o.Check
}

// TryAcquire takes the lease on sessionID for holderID, or returns ErrHeld.
// When the last holder did not give the lease back it waits TakeoverDelay,
// holding the lock, before it returns, and fails if the lock did not last
// the wait (see the package comment).
func TryAcquire(ctx context.Context, st *store.Store, sessionID, holderID string, opts Options) (*Lease, error) {
	if st.Engine() == store.SQLite {
		return trySQLite(ctx, st, sessionID, holderID, opts)
	}
	return tryPostgres(ctx, st.DB(), sessionID, holderID, opts)
}

// Acquire waits until it holds the lease or ctx ends, calling standby once
// with the current holder when it has to wait.
func Acquire(ctx context.Context, st *store.Store, sessionID, holderID string, poll time.Duration, opts Options, standby func(Holder)) (*Lease, error) {
	told := false
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		l, err := TryAcquire(ctx, st, sessionID, holderID, opts)
		switch {
		case err == nil:
			return l, nil
		case ctx.Err() != nil:
			return nil, fmt.Errorf("wait for the account lease: %w", ctx.Err())
		case !errors.Is(err, ErrHeld):
			if opts.OnError != nil {
				opts.OnError(err)
			}
		case !told && standby != nil:
			h, _, _ := CurrentHolder(ctx, st, sessionID)
			standby(h)
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the account lease: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func tryPostgres(ctx context.Context, db *sql.DB, sessionID, holderID string, opts Options) (*Lease, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open lease connection: %w", err)
	}
	// The holder's name rides on the connection, so a standby can read it
	// from pg_stat_activity without a table that could go stale.
	// Keep-alives let the server free the lock about a minute after the
	// holder's machine vanished without closing the connection.
	if _, err := conn.ExecContext(ctx, `SELECT set_config('application_name', $1, false),
		set_config('tcp_keepalives_idle', '30', false), set_config('tcp_keepalives_interval', '10', false),
		set_config('tcp_keepalives_count', '3', false)`, "blacksky "+holderID); err != nil {
		conn.Close()
		return nil, fmt.Errorf("name lease connection: %w", err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", lockKey(sessionID)).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("take account lease: %w", err)
	}
	if !got {
		conn.Close()
		return nil, ErrHeld
	}
	return hold(ctx, lock{
		db: conn,
		check: func(ctx context.Context) error {
			var held bool
			err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
				WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
				AND objid = ($1::bigint & 4294967295)::oid AND classid = (($1::bigint >> 32) & 4294967295)::oid)`, lockKey(sessionID)).Scan(&held)
			if err == nil && !held {
				err = errors.New("advisory lock no longer held")
			}
			return err
		},
		unlock: func() error {
			// Bounded: on a connection that stopped answering, closing it
			// is what frees the lock (once the server notices).
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			_, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", lockKey(sessionID))
			// Closing the connection releases the lock even if the unlock failed.
			return errors.Join(err, conn.Close())
		},
	}, sessionID, holderID, opts)
}

func lockPath(dbPath, sessionID string) string {
	return dbPath + ".lease-" + sessionID
}

func trySQLite(ctx context.Context, st *store.Store, sessionID, holderID string, opts Options) (*Lease, error) {
	path := lockPath(st.SQLitePath(), sessionID)
	fl, err := filelock.TryLock(path)
	if errors.Is(err, filelock.ErrLocked) {
		return nil, ErrHeld
	}
	if err != nil {
		return nil, fmt.Errorf("take account lease: %w", err)
	}
	return hold(ctx, lock{
		db:     st.DB(),
		check:  func(context.Context) error { return fl.Check() },
		unlock: fl.Release,
		held: func() {
			// Tell standbys who holds it; the lock itself is the kernel's.
			info, _ := json.Marshal(Holder{ID: holderID, Since: time.Now().UTC()})
			os.WriteFile(path+".holder", info, 0o600)
		},
		// Only on a clean release: after a loss the file names the new holder.
		released: func() { os.Remove(path + ".holder") },
	}, sessionID, holderID, opts)
}

// CurrentHolder reports who holds the lease on sessionID, if anyone.
func CurrentHolder(ctx context.Context, st *store.Store, sessionID string) (Holder, bool, error) {
	if st.Engine() == store.SQLite {
		raw, err := os.ReadFile(lockPath(st.SQLitePath(), sessionID) + ".holder")
		if err != nil {
			return Holder{}, false, nil
		}
		var h Holder
		if err := json.Unmarshal(raw, &h); err != nil {
			return Holder{}, false, nil
		}
		return h, true, nil
	}
	var h Holder
	err := st.DB().QueryRowContext(ctx, `SELECT a.application_name, a.backend_start
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted
		AND l.objid = ($1::bigint & 4294967295)::oid AND l.classid = (($1::bigint >> 32) & 4294967295)::oid`, lockKey(sessionID)).Scan(&h.ID, &h.Since)
	if errors.Is(err, sql.ErrNoRows) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, fmt.Errorf("read lease holder: %w", err)
	}
	return h, true, nil
}
