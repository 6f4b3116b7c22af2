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

// Claiming is two steps, as the outgoing queue learnt it (internal/outbox,
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
	// planned goes before the arguments of claim and candidates: on
	// PostgreSQL it has them planned for their values every time (a plan
	// made once for any value walks the primary key instead of the index
	// of open rows).
	planned []any
	open    string // the state condition of an open (pending or running) row
}

func (s statements) args(args ...any) []any { return append(append([]any(nil), s.planned...), args...) }

func quote(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

func newStatements(engine store.Engine, t Table) statements {
	open := "state = " + quote(t.Pending)
	if t.Running != t.Pending {
		open = "state IN (" + quote(t.Pending) + ", " + quote(t.Running) + ")"
	}
	// A job is due when it is open, its time has come, and no live lease
	// holds it; with a partition it must also be its partition's first
	// open job.
	due := "o.session_id = $4 AND o." + open + " AND o.run_at <= $1 AND COALESCE(o.lease_until, 0) <= $1"
	if t.Partition != "" {
		due += fmt.Sprintf(` AND o.id = (SELECT h.id FROM %[1]s h
			WHERE h.session_id = o.session_id AND h.%[2]s = o.%[2]s AND h.%[3]s
			ORDER BY h.session_id, h.%[2]s, h.id LIMIT 1)`, t.Name, t.Partition, open)
	}
	part := "''"
	if t.Partition != "" {
		part = t.Partition
	}
	s := statements{open: open}
	claim := `UPDATE ` + t.Name + `
		SET state = ` + quote(t.Running) + `, attempts = attempts + 1, lease_owner = $2, lease_until = $3, updated_at = $1
		WHERE id %s SELECT o.id FROM ` + t.Name + ` o WHERE %s AND ` + due + ` %s
		RETURNING id, ` + part + `, attempts`
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
	// When a job next becomes due: the earliest time still to come among
	// the open rows' run_at and lease ends. Times already past are left
	// out: such a job is claimable now, or waits behind its partition's
	// running job, whose end the worker hears of without polling.
	s.due = `SELECT min(t) FROM (SELECT CASE WHEN COALESCE(lease_until, 0) > run_at THEN lease_until ELSE run_at END AS t
		FROM ` + t.Name + ` WHERE session_id = $1 AND ` + open + `) open_times WHERE t > $2`
	return s
}

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
	now := q.now()
	ids, err := q.candidates(ctx, now, n)
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	rows, err := q.db.QueryContext(ctx, q.sql.claim, q.sql.args(ms(now), owner, ms(now.Add(lease)), q.session, q.list(ids))...)
	if err != nil {
		return nil, fmt.Errorf("claim %s jobs: %w", q.t.Name, err)
	}
	defer rows.Close()
	var jobs []Job
	for rows.Next() {
		j := Job{Owner: owner}
		if err := rows.Scan(&j.ID, &j.Partition, &j.Attempts); err != nil {
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

// candidates returns up to n ids of jobs that look due now, oldest first.
func (q *Queue) candidates(ctx context.Context, now time.Time, n int) ([]int64, error) {
	if q.t.Partition == "" {
		return q.unorderedCandidates(ctx, now, n)
	}
	seen := map[string]bool{}
	var ids []int64
	var after int64
	for len(ids) < n && len(seen) <= maxSeenPartitions {
		parts := make([]string, 0, len(seen))
		for p := range seen {
			parts = append(parts, p)
		}
		rows, err := q.db.QueryContext(ctx, q.sql.candidates, q.sql.args(q.session, after, claimPageSize, q.list(parts))...)
		if err != nil {
			return nil, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
		}
		read := 0
		for rows.Next() {
			var id, runAt, leaseUntil int64
			var part string
			if err := rows.Scan(&id, &part, &runAt, &leaseUntil); err != nil {
				rows.Close()
				return nil, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
			}
			read++
			after = id
			if seen[part] {
				continue // not the partition's first
			}
			seen[part] = true
			if runAt <= ms(now) && leaseUntil <= ms(now) && len(ids) < n {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("find due %s jobs: %w", q.t.Name, err)
		}
		if read < claimPageSize {
			break
		}
	}
	return ids, nil
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
// due (a retry's time, or a running job's lease end), and false when there
// is none: a job due already is claimable now or waits for the running job
// ahead of it in its partition.
func (q *Queue) NextDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	if err := q.db.QueryRowContext(ctx, q.sql.due, q.session, ms(q.now())).Scan(&next); err != nil {
		return time.Time{}, false, fmt.Errorf("find the next due %s job: %w", q.t.Name, err)
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(next.Int64), true, nil
}
