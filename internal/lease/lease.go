// Package lease makes sure one WhatsApp account is driven by exactly one
// process at a time: WhatsApp allows one connection per linked device, and
// two processes on one session replace each other's connection forever.
//
// On PostgreSQL the lease is an advisory lock held by a connection of its
// own, which the server releases the moment that connection ends, however
// the holder died. On SQLite it is a file lock next to the database, which
// the kernel releases when the holder exits.
//
// Failure model. A lock can be lost without the holder's process ending:
// PostgreSQL drops only the lease connection (a failover, an idle timeout, an
// operator), or someone deletes or replaces the lock file, so that a standby
// locks a new file. So the holder checks every interval I that its lock is
// still the one that counts (the lock row on its connection; the path still
// naming the locked file), each check given at most I, and reports the lease
// lost on the first failure (Lost): it has stopped by 2I after the last check
// that succeeded began. A new holder cannot tell a dead holder from one that
// has not noticed yet, so unless the last holder gave the lease back
// (recorded in blacksky_leases), TryAcquire waits TakeoverDelay(I) before it
// returns: the old holder has certainly stopped by then. All of it is
// measured on each process's own monotonic clock; no clocks are compared.
package lease

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"time"
)

// ErrHeld is returned by TryAcquire while another process holds the lease.
var ErrHeld = errors.New("the account is driven by another process")

// Holder describes the process that holds a lease.
type Holder struct {
	ID    string    `json:"id"`
	Since time.Time `json:"since"`
}

// Lease is a held lease.
type Lease struct {
	token   string
	lost    chan struct{} // closed by watch, its only writer
	release func(lost bool) error
	stop    chan struct{}
	done    chan struct{}
}

// Token names this holding of the lease; blacksky_leases holds it while
// the holding is the account's (store.FencedDevice fences writes with it).
func (l *Lease) Token() string { return l.token }

// Lost is closed when the lease is gone without Release (the database
// connection holding it broke, the lock file was replaced); the holder must
// stop at once.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

func (l *Lease) isLost() bool {
	select {
	case <-l.lost:
		return true
	default:
		return false
	}
}

// Release gives the lease back for a standby to take. After a loss it only
// frees what this process still has: it records no clean hand-over and
// leaves alone what the new holder wrote.
func (l *Lease) Release() error {
	close(l.stop)
	<-l.done
	return l.release(l.isLost())
}

// checkTimeout bounds one check, so that a database that stops answering
// counts as a lost lease within the interval.
func checkTimeout(interval time.Duration) time.Duration { return interval }

// TakeoverDelay is how long a new holder waits before it acts when the last
// holder did not give the lease back: twice the interval, by when the old
// holder has noticed (see the package comment), and a margin for it to close
// its connection, at least a second, since a busy machine can delay a
// process's timers by much more than a few milliseconds.
func TakeoverDelay(interval time.Duration) time.Duration {
	return 2*interval + max(2*interval, time.Second)
}

// watch calls check every interval and closes lost when one fails, or when
// none has succeeded within 2 intervals of the start of the last one that
// did, whether or not a check is still running: a check on a connection
// that stopped answering can outlive its deadline by seconds (pgx waits to
// cancel the query first), and the holder must stop within the bound the
// next holder waits for (TakeoverDelay).
func (l *Lease) watch(interval time.Duration, check func(context.Context) error) {
	defer close(l.done)
	fence := time.NewTimer(2 * interval) // the lock was just verified
	defer fence.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	results := make(chan error, 1)
	running := false
	var started time.Time
	for {
		select {
		case <-l.stop:
			return
		case <-fence.C:
			close(l.lost)
			return
		case <-tick.C:
			if running {
				continue
			}
			running, started = true, time.Now()
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), checkTimeout(interval))
				defer cancel()
				results <- check(ctx)
			}()
		case err := <-results:
			running = false
			if err != nil {
				close(l.lost)
				return
			}
			fence.Reset(2*interval - time.Since(started))
		}
	}
}

func newLease(token string, release func(lost bool) error) *Lease {
	return &Lease{token: token, lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), release: release}
}

// HolderID names this process in /status and logs: the Heroku dyno when
// there is one, the host and process ID otherwise.
func HolderID() string {
	host, _ := os.Hostname()
	id := fmt.Sprintf("%s/pid-%d", host, os.Getpid())
	if dyno := os.Getenv("DYNO"); dyno != "" {
		id = dyno + "@" + id
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '_'
		}
		return r
	}, id)
}

// lockKey maps a session to a 64-bit advisory lock key.
func lockKey(sessionID string) int64 {
	h := fnv.New64a()
	h.Write([]byte("blacksky-account:" + sessionID))
	return int64(h.Sum64())
}
