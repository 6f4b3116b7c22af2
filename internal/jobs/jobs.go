// Package jobs is the durable job engine under blacksky's queues: rows in a
// table of the database (SQLite or PostgreSQL) that are claimed under a
// lease, worked, and then completed, retried after a backoff, or given up on
// as dead, with retention, retry and purge for an operator.
//
// Each kind of work keeps its own table, with its own columns for what the
// work is (an event's body, a message's text) and its own words for the
// states its users see; the engine owns the columns every job has (Table)
// and the rules every queue shares:
//
//   - Claim takes due jobs oldest first and leases them to one owner. On
//     PostgreSQL several processes may claim from one table at once; a job
//     is leased to one of them (FOR UPDATE SKIP LOCKED), and one whose lease
//     ran out (its owner died) is due again: that is the rescue after a crash.
//   - With a partition column (a chat), a partition's jobs run one at a time
//     in id order: only a partition's oldest open job can be claimed, so a
//     job waiting to be retried holds back the later ones of its partition
//     and is never overtaken (the failure that ruled River out for the
//     outgoing queue, see docs/ARCHITECTURE.md).
//   - Complete, Fail and Release act only on a job its caller still holds
//     (ErrLeaseLost otherwise), and Complete runs the caller's own writes in
//     the same transaction, so a state change and what reports it (a webhook
//     event) commit together or not at all.
//   - Attempts count claims, so a job that kills its process every time
//     still reaches its limit; Release gives a job back uncounted (shutdown).
//
// Failure model: every method is one statement or one transaction; an error
// leaves the job as it was, and a job whose worker vanished is due again
// when its lease ends. Nothing here sleeps or polls: the queue that uses the
// engine decides when to claim.
package jobs

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// Table names a queue's table and the words its states are written with.
// The table has these columns beside its own: id (the primary key, rising
// with insertion), session_id, state, attempts, run_at, lease_owner,
// lease_until, last_error and updated_at (times as Unix milliseconds), plus
// Partition and DoneAt when they are set.
type Table struct {
	Name string
	// Kind names the work in metrics, the API and the CLI ("incoming",
	// "webhook"); one word per kind everywhere.
	Kind string
	// Partition is the column whose jobs run one at a time in id order;
	// empty: jobs run in any order (oldest due first).
	Partition string
	// Pending, Running, Done and Dead are the state column's values.
	// Running may equal Pending: a pending row under a live lease is then
	// running, for tables whose users never see the difference.
	Pending, Running, Done, Dead string
	// DoneAt is a column set to the time a job is done; empty: none.
	DoneAt string
	// Spacing, with Partition and DoneAt, is the least time between the
	// end of one of a partition's jobs and the claim of its next: a
	// partition with a job done less than Spacing ago has nothing claimed
	// (a rate limit per chat). Zero: none.
	Spacing time.Duration
	// Revived is a column set to the time an operator retries a dead job
	// (the outgoing queue's TTL counts from it); empty: none.
	Revived string
	// Load lists the table's own columns, comma-separated, that
	// ClaimLoading reads with each claimed job, so a worker has its job's
	// content without a second query; empty: none.
	Load string
}

// Job is a claimed job: the caller loads its own columns by ID.
type Job struct {
	ID        int64
	Partition string
	// Attempts counts the claims of the job, this one included.
	Attempts int
	// Owner is who holds the lease, as given to Claim.
	Owner string
}

// Errors callers tell apart with errors.Is.
var (
	// ErrLeaseLost is returned for a job its caller no longer holds: its
	// lease ran out and another claim took it, or an operator changed it.
	ErrLeaseLost = errors.New("job lease lost")
	// ErrNotFound is returned for an id that names no job in the state asked for.
	ErrNotFound = errors.New("job not found")
)

// Queue is the engine over one table, for one session.
type Queue struct {
	db      *sql.DB
	engine  store.Engine
	t       Table
	session string
	now     func() time.Time
	sql     statements
	stats   counters
}

var identifier = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// New returns the engine over t in db for session. now is the clock (nil:
// time.Now). It refuses a table or column name that is not a plain
// identifier: they are written into the statements.
func New(db *sql.DB, engine store.Engine, t Table, session string, now func() time.Time) (*Queue, error) {
	for _, name := range []string{t.Name, t.Partition, t.DoneAt, t.Revived} {
		if name != "" && !identifier.MatchString(name) {
			return nil, fmt.Errorf("jobs: %q is not a plain identifier", name)
		}
	}
	if t.Load != "" {
		for _, name := range strings.Split(t.Load, ",") {
			if name = strings.TrimSpace(name); !identifier.MatchString(name) {
				return nil, fmt.Errorf("jobs: load column %q is not a plain identifier", name)
			}
		}
	}
	if t.Name == "" || t.Kind == "" || t.Pending == "" || t.Running == "" || t.Done == "" || t.Dead == "" {
		return nil, errors.New("jobs: a table needs a name, a kind and its four state values")
	}
	if now == nil {
		now = time.Now
	}
	return &Queue{db: db, engine: engine, t: t, session: session, now: now, sql: newStatements(engine, t)}, nil
}

// Table returns the queue's table.
func (q *Queue) Table() Table { return q.t }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }
