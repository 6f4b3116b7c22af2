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
	tx, err := q.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("complete %s job %d: %w", q.t.Name, j.ID, err)
	}
	defer tx.Rollback()
	now := ms(q.now())
	doneAt := ""
	if q.t.DoneAt != "" {
		doneAt = ", " + q.t.DoneAt + " = $4"
	}
	res, err := tx.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Done)+`, lease_owner = NULL,
		lease_until = NULL, last_error = '', updated_at = $4`+doneAt+` WHERE `+q.held(), j.ID, j.Owner, j.Attempts, now)
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("complete %s job %d: %w", q.t.Name, j.ID, err)
	}
	if also != nil {
		if err := also(tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("complete %s job %d: %w", q.t.Name, j.ID, err)
	}
	q.stats.completed.Add(1)
	return nil
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

// Bury gives j up as dead with cause as its last error; it stays stored
// until an operator retries or purges it.
func (q *Queue) Bury(ctx context.Context, j Job, cause string) error {
	res, err := q.db.ExecContext(ctx, `UPDATE `+q.t.Name+` SET state = `+quote(q.t.Dead)+`, lease_owner = NULL,
		lease_until = NULL, last_error = $4, updated_at = $5 WHERE `+q.held(),
		j.ID, j.Owner, j.Attempts, Truncate(cause), ms(q.now()))
	if err := changedOne(res, err); err != nil {
		return fmt.Errorf("bury %s job %d: %w", q.t.Name, j.ID, err)
	}
	q.stats.buried.Add(1)
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
		return true, q.Bury(ctx, j, cause)
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
