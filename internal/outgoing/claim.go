package outgoing

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/blacksky-bot/blacksky/internal/jobs"
)

// The outgoing queue is one kind of work on the job engine (internal/jobs): the
// engine claims, leases, orders per chat, spaces a chat's messages by
// ChatGap and records outcomes; the outgoing queue decides what a send's outcome
// is (dispatch.go) and keeps what only messages have: enqueueing with
// idempotency and a backlog limit, the TTL, the rate limit per account and
// the reach-out lock.

// Table is the outgoing queue's table as the job engine sees it; New sets Spacing
// from Options.ChatGap.
var Table = jobs.Table{
	Name: "blacksky_outbox", Kind: "outgoing", Partition: "chat",
	Pending: string(Pending), Running: string(Sending), Done: string(Sent), Dead: string(Dead),
	DoneAt: "sent_at", Revived: "queued_at", Load: columns,
}

func newJobs(q *Queue) *jobs.Queue {
	t := Table
	t.Spacing = q.opts.ChatGap
	j, err := jobs.New(q.db, q.engine, t, q.opts.Session, q.now)
	if err != nil {
		panic(fmt.Sprintf("outgoing: the job engine refused the outgoing queue's table: %v", err)) // a constant table
	}
	return j
}

// claim leases up to n due messages to this process, oldest first.
func (q *Queue) claim(ctx context.Context, n int) ([]Message, error) {
	var msgs []Message
	_, err := q.jobs.ClaimLoading(ctx, n, q.opts.Owner, q.opts.Lease, func(scan func(dest ...any) (jobs.Job, error)) error {
		m, err := scanRow(scanFunc(func(dest ...any) error { _, err := scan(dest...); return err }))
		msgs = append(msgs, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	// Send the older first.
	slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(a.ID, b.ID) })
	return msgs, nil
}

// job is m as the engine's claim of it by this process.
func (q *Queue) job(m Message) jobs.Job {
	return jobs.Job{ID: m.ID, Partition: m.To, Attempts: m.Attempts, Owner: q.opts.Owner}
}

// scanFunc is a scanner made of a function.
type scanFunc func(dest ...any) error

func (f scanFunc) Scan(dest ...any) error { return f(dest...) }
