package jobs

import (
	"context"
	"database/sql"
	"fmt"
	"time"
	"unicode/utf8"
)

// held is the condition of a row its claimer still holds: the same owner
// and the same claim (attempts), running.
func (q *Queue) held() string {
	return "id = $1 AND lease_owner = $2 AND attempts = $3 AND state = " + quote(q.t.Running)
}

// Complete records j as done and runs also (when not nil) in the same
// transaction: both commit or neither does. It returns ErrLeaseLost when j
// is no longer held by its claimer; also's error is returned as it is.
func (q *Queue) Complete(ctx context.Context, j Job, also func(tx *sql.Tx) error) error {
	done, err := q.CompleteAll(ctx, []Done{{Job: j}}, func(tx *sql.Tx, done []Done) error {
		if also == nil || len(done) == 0 {
			return nil
		}
		return also(tx)
	})
	if err == nil && len(done) == 0 {
		err = fmt.Errorf("complete %s job %d: %w", q.t.Name, j.ID, ErrLeaseLost)
	}
	return err
}

// Done is a job to complete and when it was done (zero: when recorded).
type Done struct {
	Job Job
	At  time.Time
}

// CompleteAll records the jobs as done in one transaction (one commit for
// a batch of workers' results) and runs also (when not nil) in it, given
// those its claimers still held, which it returns; the others are left as
// they are. also's error rolls everything back and is returned as it is.
func (q *Queue) CompleteAll(ctx context.Context, jobs []Done, also func(tx *sql.Tx, done []Done) error) ([]Done, error) {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("complete %s jobs: %w", q.t.Name, err)
	}
	defer tx.Rollback()
	now := q.now()
	doneAt := ""
	if q.t.DoneAt != "" {
		doneAt = ", " + q.t.DoneAt + " = $5"
	}
	query := `UPDATE ` + q.t.Name + ` SET state = ` + quote(q.t.Done) + `, lease_owner = NULL,
		lease_until = NULL, last_error = '', updated_at = $4` + doneAt + ` WHERE ` + q.held()
	var held []Done
	for _, d := range jobs {
		if d.At.IsZero() {
			d.At = now
		}
		args := []any{d.Job.ID, d.Job.Owner, d.Job.Attempts, ms(now)}
		if q.t.DoneAt != "" {
			args = append(args, ms(d.At))
		}
		res, err := tx.ExecContext(ctx, query, args...)
		if err := changedOne(res, err); err == ErrLeaseLost {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("complete %s job %d: %w", q.t.Name, d.Job.ID, err)
		}
		held = append(held, d)
	}
	if also != nil {
		if err := also(tx, held); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("complete %s jobs: %w", q.t.Name, err)
	}
	q.stats.completed.Add(int64(len(held)))
	return held, nil
}

// Retry records a failed attempt of j: it is due again at at, with cause
// as its last error.
func (q *Queue) Retry(ctx context.Context, j Job, cause string, at time.Time) error {
	res, err := q.db.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Pending)+`, lease_owner = NULL,
		lease_until = NULL, last_error = $4, run_at = $5, updated_at = $6 WHERE `+q.held(),
		j.ID, j.Owner, j.Attempts, Truncate(cause), ms(at), ms(q.now()))
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("reschedule %s job %d: %w", q.t.Name, j.ID, err)
	}
	q.stats.retried.Add(1)
	return nil
}

// Bury gives j up as dead with cause as its last error, and runs also
// (when not nil) in the same transaction; j stays stored until an
// operator retries or purges it. ErrLeaseLost as for Complete.
func (q *Queue) Bury(ctx context.Context, j Job, cause string, also func(tx *sql.Tx) error) error {
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("bury %s job %d: %w", q.t.Name, j.ID, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Dead)+`, lease_owner = NULL,
		lease_until = NULL, last_error = $4, updated_at = $5 WHERE `+q.held(),
		j.ID, j.Owner, j.Attempts, Truncate(cause), ms(q.now()))
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("bury %s job %d: %w", q.t.Name, j.ID, err)
	}
	if also != nil {
		if err := also(tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("bury %s job %d: %w", q.t.Name, j.ID, err)
	}
	q.stats.buried.Add(1)
	return nil
}

// Postpone gives j back to be tried again at at, the claim not counted:
// the attempt did not fail, the work must wait (for instance for a lock
// the remote side holds). cause is kept as its last error.
func (q *Queue) Postpone(ctx context.Context, j Job, cause string, at time.Time) error {
	res, err := q.db.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Pending)+`, lease_owner = NULL,
		lease_until = NULL, attempts = attempts - 1, last_error = $4, run_at = $5, updated_at = $6 WHERE `+q.held(),
		j.ID, j.Owner, j.Attempts, Truncate(cause), ms(at), ms(q.now()))
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("postpone %s job %d: %w", q.t.Name, j.ID, err)
	}
	q.stats.released.Add(1)
	return nil
}

// Release gives j back unattempted (its worker is shutting down before it
// began): due again at once, the claim not counted.
func (q *Queue) Release(ctx context.Context, j Job) error {
	res, err := q.db.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Pending)+`, lease_owner = NULL,
		lease_until = NULL, attempts = attempts - 1, updated_at = $4 WHERE `+q.held(),
		j.ID, j.Owner, j.Attempts, ms(q.now()))
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("release %s job %d: %w", q.t.Name, j.ID, err)
	}
	q.stats.released.Add(1)
	return nil
}

// Fail records a failed attempt of j by policy: retried after the
// policy's backoff, or buried once j has had MaxAttempts. It reports
// whether j is dead now.
func (q *Queue) Fail(ctx context.Context, j Job, cause string, p Policy) (dead bool, err error) {
	if j.Attempts >= p.MaxAttempts {
		return true, q.Bury(ctx, j, cause, nil)
	}
	return false, q.Retry(ctx, j, cause, q.now().Add(p.Backoff.Delay(j.Attempts-1)))
}

func changedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrLeaseLost
	}
	return nil
}

// maxErrorBytes bounds a stored last error.
const maxErrorBytes = 500

// Truncate cuts an error text to what a row keeps, on a rune boundary.
func Truncate(s string) string {
	if len(s) <= maxErrorBytes {
		return s
	}
	s = s[:maxErrorBytes]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
