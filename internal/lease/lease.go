// Package lease makes sure one WhatsApp account is driven by exactly one
// process at a time: WhatsApp allows one connection per linked device, and
// two processes on one session replace each other's connection forever.
//
// On PostgreSQL the lease is an advisory lock held by a connection of its
// own, which the server releases the moment that connection ends, however
// the holder died. On SQLite it is a file lock next to the database, which
// the kernel releases when the holder exits.
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
	lost    chan struct{}
	release func() error
	stop    chan struct{}
	done    chan struct{}
}

// Lost is closed when the lease is gone without Release (the database
// connection holding it broke); the holder must stop at once.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Release gives the lease back for a standby to take.
func (l *Lease) Release() error {
	close(l.stop)
	<-l.done
	return l.release()
}

// watch calls check every interval and closes lost when it fails.
func (l *Lease) watch(interval time.Duration, check func(context.Context) error) {
	defer close(l.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), interval+2*time.Second)
			err := check(ctx)
			cancel()
			if err != nil {
				close(l.lost)
				return
			}
		}
	}
}

func newLease(release func() error) *Lease {
	return &Lease{lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}), release: release}
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
