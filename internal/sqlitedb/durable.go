package sqlitedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
)

// In WAL mode with synchronous=NORMAL (blacksky's setting: every commit
// that does not answer anyone would pay a flush otherwise, and delivery
// halves, docs/QUEUE.md) a commit is durable against the process dying but
// not against power loss or an OS crash: the last commits before one can
// roll back. A commit that answers someone outside (a 202 to an API client,
// an ack to WhatsApp for an incoming message) must not. SQLite's
// synchronous=FULL flushes the WAL at every commit, and a flush of the WAL
// makes every earlier commit durable too. It may not be changed inside a
// transaction, so the connection switches before it begins and back after.

type durableKey struct{}

// DurableCommit marks ctx so that the transaction begun with it, or the
// write run with it outside a transaction, on a database from Open commits
// with synchronous=FULL: durable against power loss when it returns. Other
// databases ignore it (PostgreSQL's commits are, with its default
// synchronous_commit).
func DurableCommit(ctx context.Context) context.Context {
	return context.WithValue(ctx, durableKey{}, true)
}

func durable(ctx context.Context) bool {
	d, _ := ctx.Value(durableKey{}).(bool)
	return d
}

// setSynchronous sets the connection's synchronous level (SQLite's numbers:
// 1 NORMAL, 2 FULL).
func (c *Conn) setSynchronous(ctx context.Context, level int) error {
	ex, ok := c.base.(driver.ExecerContext)
	if !ok {
		return fmt.Errorf("sqlite connection cannot run pragmas")
	}
	if _, err := ex.ExecContext(ctx, fmt.Sprintf("PRAGMA synchronous = %d", level), nil); err != nil {
		return fmt.Errorf("set synchronous: %w", err)
	}
	return nil
}

// synchronous reads the connection's own level once (the data source name
// sets it, and only beginDurable changes it, always back).
func (c *Conn) synchronous(ctx context.Context) (int, error) {
	if c.syncLevel != 0 {
		return c.syncLevel, nil
	}
	q, ok := c.base.(driver.QueryerContext)
	if !ok {
		return 0, fmt.Errorf("sqlite connection cannot run pragmas")
	}
	rows, err := q.QueryContext(ctx, "PRAGMA synchronous", nil)
	if err != nil {
		return 0, fmt.Errorf("read synchronous: %w", err)
	}
	vals := make([]driver.Value, 1)
	err = rows.Next(vals)
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("read synchronous: %w", err)
	}
	level, _ := vals[0].(int64)
	c.syncLevel = int(level)
	// OFF is 0: remember it as -1 so that it is not read again.
	if c.syncLevel == 0 {
		c.syncLevel = -1
	}
	return c.syncLevel, nil
}

const synchronousFull = 2

// beginDurable switches the connection to FULL for one commit when ctx asks
// for it, and returns what switches it back.
func (c *Conn) beginDurable(ctx context.Context) (restore func(), err error) {
	if !durable(ctx) {
		return func() {}, nil
	}
	own, err := c.synchronous(ctx)
	if err != nil {
		return nil, err
	}
	c.files.durableCommits.Add(1)
	if own >= synchronousFull {
		return func() {}, nil
	}
	if err := c.setSynchronous(ctx, synchronousFull); err != nil {
		return nil, err
	}
	return func() {
		// On failure the connection stays FULL, slower but never less
		// safe; it is read again next time.
		if err := c.setSynchronous(context.WithoutCancel(ctx), max(own, 0)); err != nil {
			c.syncLevel = 0
		}
	}, nil
}

// Stats counts what a database from Open did.
type Stats struct {
	// DurableCommits is how many transactions and writes ran with
	// DurableCommit.
	DurableCommits int64
}

// StatsOf reports db's Stats; zero for other databases.
func StatsOf(db *sql.DB) Stats {
	d, ok := db.Driver().(*sqliteDriver)
	if !ok {
		return Stats{}
	}
	return Stats{DurableCommits: d.files.durableCommits.Load()}
}
