package jobs

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/blacksky-bot/blacksky/internal/store"
)

// Claiming is two steps, as the outgoing queue learnt it (internal/outgoing,
// claim.go): first the candidates are read with plain ordered scans (with a
// partition: open rows in id order a page at a time, keeping each
// partition's first; one query with a head subquery per row was planned
// badly by PostgreSQL on tables grown since their last ANALYZE), then one
// statement takes them, re-checking every condition on each row, so a job
// another process took or finished meanwhile is passed over.

// claimPageSize is how many open rows one candidate query reads.
const claimPageSize = 200

// maxSeenPartitions bounds the partitions a candidate search leaves out of
// its next page; past it the search stops with what it found.
const maxSeenPartitions = 1000

// statements are the engine's SQL for one table and one database engine.
type statements struct {
	claim, candidates, due string
	// spacedOut lists the partitions whose gap has not ended (Spacing).
	spacedOut string
	// loaded counts the Load columns the claim returns.
	loaded int
	// planned goes before the arguments of claim and candidates: on
	// PostgreSQL it has them planned for their values every time (a plan
	// made once for any value walks the primary key instead of the index
	// of open rows).
	planned []any
	open    string // the state condition of an open (pending or running) row
}

// discard is scan destinations that drop the Load columns (a Claim
// without a Load).
func (s statements) discard() []any {
	dest := make([]any, s.loaded)
	for i := range dest {
		dest[i] = new(any)
	}
	return dest
}

func (s statements) args(args ...any) []any { return append(append([]any(nil), s.planned...), args...) }

func quote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

func newStatements(engine store.Engine, t Table) statements {
	open := "state = " + quote(t.Pending)
	if t.Running != t.Pending {
		open = "state IN (" + quote(t.Pending) + ", " + quote(t.Running) + ")"
	}
	s := statements{open: open}
	if t.Load != "" {
		s.loaded = len(strings.Split(t.Load, ","))
	}
	claim := `UPDATE ` + t.Name + `
		SET state = ` + quote(t.Running) + `, attempts = attempts + 1, lease_owner = $2, lease_until = $3, updated_at = $1
		WHERE id %s SELECT o.id FROM ` + t.Name + ` o WHERE %s AND ` + dueCondition(t, open) + ` %s
		RETURNING id, ` + partitionOf(t) + `, attempts` + loaded(t)
	if engine == store.Postgres {
		s.claim = fmt.Sprintf(claim, "= ANY(ARRAY(", "o.id = ANY(CAST($5 AS BIGINT[]))", "FOR UPDATE SKIP LOCKED))")
		s.planned = []any{pgx.QueryExecModeExec}
	} else {
		s.claim = fmt.Sprintf(claim, "IN (", "o.id IN (SELECT value FROM json_each($5))", ")")
	}
	if t.Partition != "" {
		leaveOut := "%s NOT IN (SELECT value FROM json_each($4))"
		if engine == store.Postgres {
			leaveOut = "%s <> ALL(CAST($4 AS TEXT[]))"
		}
		s.candidates = `SELECT id, ` + t.Partition + `, run_at, COALESCE(lease_until, 0) FROM ` + t.Name + `
			WHERE session_id = $1 AND ` + open + ` AND id > $2 AND ` + fmt.Sprintf(leaveOut, t.Partition) + `
			ORDER BY id LIMIT $3`
	} else {
		s.candidates = `SELECT id FROM ` + t.Name + ` o
			WHERE o.session_id = $1 AND o.` + open + ` AND o.run_at <= $2 AND COALESCE(o.lease_until, 0) <= $2
			ORDER BY o.run_at, o.id LIMIT $3`
	}
	if spaced(t) {
		s.spacedOut = `SELECT DISTINCT ` + t.Partition + ` FROM ` + t.Name + `
			WHERE session_id = $1 AND state = ` + quote(t.Done) + ` AND ` + t.DoneAt + ` > $2`
	}
	// When a job next becomes due: the earliest time still to come of a
	// pending job's run_at, a lease's end, and (spaced) a partition's gap's
	// end. Times already past are left out: such a job is claimable now,
	// or waits behind its partition's running job, whose end the worker
	// hears of without polling. Each minimum reads its own index.
	s.due = `SELECT (SELECT min(run_at) FROM ` + t.Name + ` WHERE session_id = $1 AND state = ` + quote(t.Pending) + ` AND run_at > $2),
		(SELECT min(lease_until) FROM ` + t.Name + ` WHERE session_id = $1 AND state = ` + quote(t.Running) + ` AND lease_until > $2)`
	if spaced(t) {
		s.due += `, (SELECT min(` + t.DoneAt + `) FROM ` + t.Name + ` WHERE session_id = $1 AND state = ` + quote(t.Done) + ` AND ` + t.DoneAt + ` > $3)`
	}
	return s
}

// dueCondition is the claim statement's test of a candidate row o: it is
// open, its time has come, and no live lease holds it; with a partition it
// must also be its partition's first open job, and no job of its partition
// may be under a live lease (an operator's retry can make a dead job the
// first while a later one runs); spaced, no job of its partition may have
// been done since $6.
func dueCondition(t Table, open string) string {
	due := "o.session_id = $4 AND o." + open + " AND o.run_at <= $1 AND COALESCE(o.lease_until, 0) <= $1"
	if t.Partition == "" {
		return due
	}
	due += fmt.Sprintf(` AND o.id = (SELECT h.id FROM %[1]s h
			WHERE h.session_id = o.session_id AND h.%[2]s = o.%[2]s AND h.%[3]s
			ORDER BY h.session_id, h.%[2]s, h.id LIMIT 1)
		AND NOT EXISTS (SELECT 1 FROM %[1]s r
			WHERE r.session_id = o.session_id AND r.%[2]s = o.%[2]s AND r.state = %[4]s AND r.lease_until > $1)`,
		t.Name, t.Partition, open, quote(t.Running))
	if spaced(t) {
		due += fmt.Sprintf(` AND NOT EXISTS (SELECT 1 FROM %[1]s g
			WHERE g.session_id = o.session_id AND g.state = %[3]s AND g.%[4]s > $6 AND g.%[2]s = o.%[2]s)`,
			t.Name, t.Partition, quote(t.Done), t.DoneAt)
	}
	return due
}

func partitionOf(t Table) string {
	if t.Partition == "" {
		return "''"
	}
	return t.Partition
}

func loaded(t Table) string {
	if t.Load == "" {
		return ""
	}
	return ", " + t.Load
}

// spaced reports whether t keeps a gap between a partition's jobs.
func spaced(t Table) bool { return t.Spacing > 0 && t.Partition != "" && t.DoneAt != "" }

// list passes a list as one parameter: an array to PostgreSQL, JSON text to
// SQLite's json_each.
func (q *Queue) list(v any) any {
	if q.engine == store.Postgres {
		return v
	}
	b, _ := json.Marshal(v) // slices of strings and ints always marshal
	if string(b) == "null" {
		return "[]"
	}
	return string(b)
}

// Claim leases up to n due jobs to owner until lease from now, oldest
// first, and returns them; none due is no error.
func (q *Queue) Claim(ctx context.Context, n int, owner string, lease time.Duration) ([]Job, error) {
	return q.ClaimLoading(ctx, n, owner, lease, nil)
}

// Load reads a claimed job's Table.Load columns: it calls scan once, with
// destinations for those columns in their order, and scan returns the job.
type Load func(scan func(dest ...any) (Job, error)) error

// ClaimLoading is Claim that also reads each claimed job's own columns
// (Table.Load) in the same statement: load is called once per job, in no
// particular order (the jobs returned are in id order); nil reads none.
func (q *Queue) ClaimLoading(ctx context.Context, n int, owner string, lease time.Duration, load Load) ([]Job, error) {
	now := q.now()
	ids, err := q.candidates(ctx, now, n)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	args := []any{ms(now), owner, ms(now.Add(lease)), q.session, q.list(ids)}
	if spaced(q.t) {
		args = append(args, q.gapSince(now))
	}
	rows, err := q.db.QueryContext(ctx, q.sql.claim, q.sql.args(args...)...)
	if err != nil {
		return nil, fmt.Errorf("claim %s jobs: %w", q.t.Name, err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		j := Job{Owner: owner}
		scan := func(dest ...any) (Job, error) {
			return j, rows.Scan(append([]any{&j.ID, &j.Partition, &j.Attempts}, dest...)...)
		}
		if load != nil {
			err = load(scan)
		} else {
			j, err = scan(q.sql.discard()...)
		}
		if err != nil {
			return nil, fmt.Errorf("claim %s jobs: %w", q.t.Name, err)
		}
		jobs = append(jobs, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim %s jobs: %w", q.t.Name, err)
	}
	q.stats.claimed.Add(int64(len(jobs)))
	// RETURNING has no order.
	slices.SortFunc(jobs, func(a, b Job) int { return cmp.Compare(a.ID, b.ID) })
	return jobs, nil
}

// gapSince is the time after which a partition's done job keeps it out of claims.
func (q *Queue) gapSince(now time.Time) int64 { return ms(now.Add(-q.t.Spacing)) }

// candidates returns up to n ids of jobs that look due now, oldest first.
func (q *Queue) candidates(ctx context.Context, now time.Time, n int) ([]int64, error) {
	if q.t.Partition == "" {
		return q.unorderedCandidates(ctx, now, n)
	}
	seen, err := q.spacedOut(ctx, now)
	if err != nil {
		return nil, err
	}
	var ids []int64
	var after int64
	for len(ids) < n && len(seen) <= maxSeenPartitions {
		page, read, err := q.candidatePage(ctx, now, after, seen, n-len(ids))
		if err != nil {
			return nil, err
		}
		ids = append(ids, page...)
		if read.n < claimPageSize {
			break
		}
		after = read.last
	}
	return ids, nil
}

// pageRead is how many rows a candidate page read and the last id.
type pageRead struct {
	n    int
	last int64
}

// candidatePage reads one page of open rows after id after, keeping each
// partition's first not yet seen (and marking it seen), and returns up to
// n of those that are due.
func (q *Queue) candidatePage(ctx context.Context, now time.Time, after int64, seen map[string]bool, n int) ([]int64, pageRead, error) {
	parts := make([]string, 0, len(seen))
	for p := range seen {
		parts = append(parts, p)
	}
	rows, err := q.db.QueryContext(ctx, q.sql.candidates, q.sql.args(q.session, after, claimPageSize, q.list(parts))...)
	if err != nil {
		return nil, pageRead{}, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
	}
	defer rows.Close()
	var ids []int64
	var read pageRead
	for rows.Next() {
		var id, runAt, leaseUntil int64
		var part string
		if err := rows.Scan(&id, &part, &runAt, &leaseUntil); err != nil {
			return nil, pageRead{}, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
		}
		read.n++
		read.last = id
		if seen[part] {
			continue // not the partition's first
		}
		seen[part] = true
		if runAt <= ms(now) && leaseUntil <= ms(now) && len(ids) < n {
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, pageRead{}, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
	}
	return ids, read, nil
}

// spacedOut returns the partitions whose gap (Spacing) has not ended, as
// the seen set a candidate search starts with; empty when not spaced.
func (q *Queue) spacedOut(ctx context.Context, now time.Time) (map[string]bool, error) {
	seen := map[string]bool{}
	if !spaced(q.t) {
		return seen, nil
	}
	rows, err := q.db.QueryContext(ctx, q.sql.spacedOut, q.session, q.gapSince(now))
	if err != nil {
		return nil, fmt.Errorf("find %s partitions within their gap: %w", q.t.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var part string
		if err := rows.Scan(&part); err != nil {
			return nil, fmt.Errorf("find %s partitions within their gap: %w", q.t.Name, err)
		}
		seen[part] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find %s partitions within their gap: %w", q.t.Name, err)
	}
	return seen, nil
}

func (q *Queue) unorderedCandidates(ctx context.Context, now time.Time, n int) ([]int64, error) {
	rows, err := q.db.QueryContext(ctx, q.sql.candidates, q.sql.args(q.session, ms(now), n)...)
	if err != nil {
		return nil, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
	}
	return ids, nil
}

// NextDue returns the next time still to come at which an open job becomes
// due (a retry's time, a running job's lease end, or a spaced partition's
// gap end), and false when there is none: a job due already is claimable
// now or waits for the running job ahead of it in its partition.
func (q *Queue) NextDue(ctx context.Context) (time.Time, bool, error) {
	now := q.now()
	var run, lease, done sql.NullInt64
	var err error
	if spaced(q.t) {
		err = q.db.QueryRowContext(ctx, q.sql.due, q.session, ms(now), q.gapSince(now)).Scan(&run, &lease, &done)
	} else {
		err = q.db.QueryRowContext(ctx, q.sql.due, q.session, ms(now)).Scan(&run, &lease)
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("find the next due %s job: %w", q.t.Name, err)
	}
	var next time.Time
	consider := func(v sql.NullInt64, after time.Duration) {
		if t := fromMS(v.Int64).Add(after); v.Valid && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	consider(run, 0)
	consider(lease, 0)
	consider(done, q.t.Spacing)
	return next, !next.IsZero(), nil
}
