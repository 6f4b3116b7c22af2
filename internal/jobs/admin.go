package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Depths returns how many jobs are in each state, by the words the table
// writes (where Running equals Pending, running jobs count as pending);
// every state is present. Each state is counted on its own, in one
// statement (one snapshot): a GROUP BY state reads every row, and on SQLite
// a row's state may be stored after a large text, so that is every
// overflow page of every row (the outgoing queue's 20,000-message backlog
// took up to 30 s, issue 13, case 7), where a count of one state can read
// a partial index of it.
func (q *Queue) Depths(ctx context.Context) (map[string]int, error) {
	states := q.States()
	dest := make([]any, len(states))
	n := make([]int, len(states))
	for i := range states {
		dest[i] = &n[i]
	}
	if err := q.db.QueryRowContext(ctx, DepthsSQL(q.t), q.session).Scan(dest...); err != nil {
		return nil, fmt.Errorf("count %s jobs: %w", q.t.Name, err)
	}
	out := make(map[string]int, len(states))
	for i, s := range states {
		out[s] = n[i]
	}
	return out, nil
}

// DepthsSQL is the statement Depths runs on t (session in $1), one count
// per state in States' order, so a table's owner can check that its
// indexes serve it (EXPLAIN).
func DepthsSQL(t Table) string {
	var counts []string
	for _, s := range (&Queue{t: t}).States() {
		counts = append(counts, `(SELECT count(*) FROM `+t.Name+` WHERE session_id = $1 AND state = `+quote(s)+`)`)
	}
	return `SELECT ` + strings.Join(counts, ", ")
}

// RetryDead makes every dead job pending again, due now with its attempts
// reset (and Revived set), and returns how many.
func (q *Queue) RetryDead(ctx context.Context) (int64, error) {
	return q.revive(ctx, "", nil)
}

// RetryOne makes the dead job id pending again; ErrNotFound when id names no dead job.
func (q *Queue) RetryOne(ctx context.Context, id int64) error {
	n, err := q.revive(ctx, " AND id = $3", []any{id})
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return err
}

func (q *Queue) revive(ctx context.Context, cond string, args []any) (int64, error) {
	n, err := q.reopen(ctx, q.db, q.t.Dead, cond, args)
	if err != nil {
		return 0, fmt.Errorf("retry dead %s jobs: %w", q.t.Name, err)
	}
	return n, nil
}

// RedoDone makes the done jobs ids pending again, due now with their
// attempts reset (and Revived set), through ex (the database or a
// transaction): work that must be done once more, such as a message to
// send again after its recipient's keys changed. Ids that name no done job
// are skipped; it returns how many were done.
func (q *Queue) RedoDone(ctx context.Context, ex Execer, ids []int64) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := make([]any, 0, len(ids))
	marks := make([]string, 0, len(ids))
	for _, id := range ids {
		args = append(args, id)
		marks = append(marks, fmt.Sprintf("$%d", len(args)+2))
	}
	n, err := q.reopen(ctx, ex, q.t.Done, " AND id IN ("+strings.Join(marks, ", ")+")", args)
	if err != nil {
		return 0, fmt.Errorf("redo done %s jobs: %w", q.t.Name, err)
	}
	return n, nil
}

// Execer is a *sql.DB or *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// reopen makes the session's jobs in state from that match cond (whose
// parameters start at $3) pending and due now, attempts reset.
func (q *Queue) reopen(ctx context.Context, ex Execer, from, cond string, args []any) (int64, error) {
	revived := ""
	if q.t.Revived != "" {
		revived = ", " + q.t.Revived + " = $2"
	}
	res, err := ex.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Pending)+`, attempts = 0,
		lease_owner = NULL, lease_until = NULL, run_at = $2, updated_at = $2`+revived+`
		WHERE session_id = $1 AND state = `+quote(from)+cond, append([]any{q.session, ms(q.now())}, args...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PurgeDead deletes every dead job and returns how many.
func (q *Queue) PurgeDead(ctx context.Context) (int64, error) {
	res, err := q.db.ExecContext(ctx, `DELETE FROM `+q.t.Name+` WHERE session_id = $1 AND state = `+quote(q.t.Dead), q.session)
	if err != nil {
		return 0, fmt.Errorf("purge dead %s jobs: %w", q.t.Name, err)
	}
	return res.RowsAffected()
}

// PurgeOne deletes the job id if it is dead or done; ErrNotFound otherwise
// (an open job is never deleted under its worker).
func (q *Queue) PurgeOne(ctx context.Context, id int64) error {
	res, err := q.db.ExecContext(ctx, `DELETE FROM `+q.t.Name+` WHERE session_id = $1 AND id = $2
		AND state IN (`+quote(q.t.Dead)+`, `+quote(q.t.Done)+`)`, q.session, id)
	if err := changedOne(res, err); err != nil {
		if err == ErrLeaseLost {
			return ErrNotFound
		}
		return fmt.Errorf("purge %s job %d: %w", q.t.Name, id, err)
	}
	return nil
}

// Prune deletes jobs done before cut (by DoneAt, else by their last
// change) and returns how many.
func (q *Queue) Prune(ctx context.Context, cut time.Time) (int64, error) {
	at := "updated_at"
	if q.t.DoneAt != "" {
		at = q.t.DoneAt
	}
	res, err := q.db.ExecContext(ctx, `DELETE FROM `+q.t.Name+` WHERE session_id = $1 AND state = `+quote(q.t.Done)+`
		AND `+at+` < $2`, q.session, ms(cut))
	if err != nil {
		return 0, fmt.Errorf("prune %s jobs: %w", q.t.Name, err)
	}
	return res.RowsAffected()
}

// ReclaimAll makes every job under a lease due again at once, keeping its
// attempts, and returns how many. Call it only where no other worker of the
// session can be running (the process holding the account's lease, as it
// starts): those leases are then a dead process's, and need not be waited out.
func (q *Queue) ReclaimAll(ctx context.Context) (int64, error) {
	now := ms(q.now())
	res, err := q.db.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Pending)+`, lease_owner = NULL,
		lease_until = NULL, run_at = $2, updated_at = $2 WHERE session_id = $1 AND `+q.sql.open+` AND lease_owner IS NOT NULL`,
		q.session, now)
	if err != nil {
		return 0, fmt.Errorf("reclaim %s jobs: %w", q.t.Name, err)
	}
	return res.RowsAffected()
}

// Summary is what every job shows an operator, whatever its kind.
type Summary struct {
	ID        int64     `json:"id"`
	Partition string    `json:"partition,omitempty"`
	State     string    `json:"state"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	RunAt     time.Time `json:"run_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// List returns up to limit jobs in state (any state when empty) with an id
// below before (none when 0), newest first.
func (q *Queue) List(ctx context.Context, state string, before int64, limit int) ([]Summary, error) {
	part := "''"
	if q.t.Partition != "" {
		part = q.t.Partition
	}
	query := `SELECT id, ` + part + `, state, attempts, last_error, run_at, updated_at FROM ` + q.t.Name + `
		WHERE session_id = $1 AND ($2 = '' OR state = $2) AND ($3 = 0 OR id < $3) ORDER BY id DESC LIMIT $4`
	rows, err := q.db.QueryContext(ctx, query, q.session, state, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list %s jobs: %w", q.t.Name, err)
	}
	defer rows.Close()
	out := []Summary{}
	for rows.Next() {
		var s Summary
		var runAt, updated int64
		if err := rows.Scan(&s.ID, &s.Partition, &s.State, &s.Attempts, &s.LastError, &runAt, &updated); err != nil {
			return nil, fmt.Errorf("list %s jobs: %w", q.t.Name, err)
		}
		s.RunAt, s.UpdatedAt = fromMS(runAt), fromMS(updated)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s jobs: %w", q.t.Name, err)
	}
	return out, nil
}

// States returns the words of the table's states: pending, running, done,
// dead (running equal to pending where the table has no word of its own).
func (q *Queue) States() []string {
	out := []string{q.t.Pending}
	if q.t.Running != q.t.Pending {
		out = append(out, q.t.Running)
	}
	return append(out, q.t.Done, q.t.Dead)
}
