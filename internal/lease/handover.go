package lease

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// The hand-over record (blacksky_leases) says whether the last holder of an
// account's lease gave it back. It is written only by the holder, while the
// lock is held: "taken" right after locking, "released" right before
// unlocking. A holder that dies, or loses its lock, leaves "taken" behind,
// and the next holder waits TakeoverDelay before it acts.

// releaseTimeout bounds what a release asks the database: a connection that
// stopped answering must not keep the process from going on.
const releaseTimeout = 2 * time.Second

// lock is a lock taken on one database, as hold needs it.
type lock struct {
	db       execer                      // where the hand-over record is written
	check    func(context.Context) error // whether the lock still counts
	unlock   func() error
	held     func() // if set, runs once the lease is held, after any wait
	released func() // if set, runs on a clean release, before unlock
}

// hold makes a lease of a lock just taken: it records the holding, waits out
// a hand-over the last holder did not give back, and watches the lock.
func hold(ctx context.Context, lk lock, sessionID, holderID string, opts Options) (*Lease, error) {
	token := newToken()
	clean, prev, err := take(ctx, lk.db, sessionID, holderID, token)
	if err == nil {
		err = waitTakeover(ctx, clean, prev, opts, lk.check)
	}
	if err != nil {
		return nil, errors.Join(err, lk.unlock())
	}
	if lk.held != nil {
		lk.held()
	}
	l := newLease(token, func(lost bool) error {
		var err error
		if !lost {
			ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			err = giveBack(ctx, lk.db, sessionID, token)
			cancel()
			if lk.released != nil {
				lk.released()
			}
		}
		return errors.Join(err, lk.unlock())
	})
	go l.watch(opts.check(), lk.check)
	return l, nil
}

// execer is what the record is written through: the lease connection on
// PostgreSQL (so it happens under the lock), the database on SQLite.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// newToken names one holding of a lease, so that a holder that lost it
// cannot mark the next holder's holding released.
func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// take records that token holds the lease on sessionID, and reports whether
// the previous holder gave it back (true too when there was none).
func take(ctx context.Context, db execer, sessionID, holderID, token string) (clean bool, prev string, err error) {
	var released sql.NullInt64
	err = db.QueryRowContext(ctx, "SELECT holder, released_at FROM blacksky_leases WHERE session_id = $1", sessionID).Scan(&prev, &released)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		clean = true
	case err != nil:
		return false, "", fmt.Errorf("read lease hand-over: %w", err)
	default:
		clean = released.Valid
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO blacksky_leases (session_id, holder, token, taken_at, released_at)
		VALUES ($1, $2, $3, $4, NULL)
		ON CONFLICT (session_id) DO UPDATE SET holder = excluded.holder, token = excluded.token,
			taken_at = excluded.taken_at, released_at = NULL`,
		sessionID, holderID, token, time.Now().UnixMilli()); err != nil {
		return false, "", fmt.Errorf("record lease holder: %w", err)
	}
	return clean, prev, nil
}

// giveBack records a clean hand-over of token's holding.
func giveBack(ctx context.Context, db execer, sessionID, token string) error {
	_, err := db.ExecContext(ctx, "UPDATE blacksky_leases SET released_at = $1 WHERE session_id = $2 AND token = $3",
		time.Now().UnixMilli(), sessionID, token)
	if err != nil {
		return fmt.Errorf("record lease hand-over: %w", err)
	}
	return nil
}

// waitTakeover waits out TakeoverDelay unless the last holder gave the lease
// back, and then checks that the lock is still held: it is not watched
// meanwhile, and a lock lost during the wait (the lease connection dropped
// again) would otherwise be used by two processes that both waited.
func waitTakeover(ctx context.Context, clean bool, prev string, opts Options, check func(context.Context) error) error {
	if clean {
		return nil
	}
	d := TakeoverDelay(opts.check())
	if opts.OnTakeover != nil {
		opts.OnTakeover(prev, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait for the previous holder to stop: %w", ctx.Err())
	case <-t.C:
	}
	cctx, cancel := context.WithTimeout(ctx, checkTimeout(opts.check()))
	defer cancel()
	if err := check(cctx); err != nil {
		return fmt.Errorf("the lease was lost while waiting for the previous holder to stop: %w", err)
	}
	return nil
}
