package jobs

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"
)

// The rules the outgoing queue needs beyond the common ones: a gap between
// a chat's messages, its own columns read with the claim, a batch of
// results in one transaction, a postponement that is not an attempt, and
// a dead job an operator retries while a later one of its chat runs.

// With Spacing, a partition whose job was done less than Spacing ago has
// nothing claimed, and NextDue says when its gap ends; other partitions
// go on meanwhile.
func TestSpacingKeepsAGapPerPartition(t *testing.T) {
	spacedTable := ordered
	spacedTable.Spacing = 3 * time.Second
	eachKind(t, spacedTable, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		f.add("a", "a2")
		a1 := f.claim(10, "w")
		if err := f.q.Complete(ctx, a1[0], nil); err != nil {
			t.Fatal(err)
		}
		f.add("b", "b1")
		if got := f.payloads(f.claim(10, "w")); !same(got, []string{"b1"}) {
			t.Fatalf("within a's gap: claimed %v, want [b1] only", got)
		}
		next, ok, err := f.q.NextDue(ctx)
		if err != nil || !ok || !next.Equal(f.clk.Now().Add(3*time.Second)) {
			t.Fatalf("NextDue = %v %v %v, want the end of a's gap %v", next, ok, err, f.clk.Now().Add(3*time.Second))
		}
		f.clk.Advance(3*time.Second - time.Millisecond)
		if got := f.claim(10, "w"); len(got) != 0 {
			t.Fatalf("a millisecond before a's gap ends: claimed %v", f.payloads(got))
		}
		f.clk.Advance(time.Millisecond)
		if got := f.payloads(f.claim(10, "w")); !same(got, []string{"a2"}) {
			t.Fatalf("after a's gap: claimed %v, want [a2]", got)
		}
	})
}

// The claim statement itself re-checks the gap, so a claimer whose
// candidate search ran before another process recorded a partition's job
// as done does not take the next one inside the gap.
func TestSpacingIsRecheckedByTheClaim(t *testing.T) {
	spacedTable := ordered
	spacedTable.Spacing = time.Minute
	eachKind(t, spacedTable, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		f.add("a", "a2")
		a1 := f.claim(1, "w")
		if err := f.q.Complete(ctx, a1[0], nil); err != nil {
			t.Fatal(err)
		}
		var a2 int64
		if err := f.db.QueryRow(`SELECT max(id) FROM jobs_ordered`).Scan(&a2); err != nil {
			t.Fatal(err)
		}
		now := f.clk.Now()
		rows, err := f.db.QueryContext(ctx, f.q.sql.claim, f.q.sql.args(ms(now), "w", ms(now.Add(time.Minute)), "s1", f.q.list([]int64{a2}), f.q.gapSince(now))...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if rows.Next() {
			t.Fatal("the claim statement took a2 inside its chat's gap")
		}
	})
}

// ClaimLoading returns the table's own columns with each job, from the
// claim's own statement.
func TestClaimLoadingReadsTheJobsColumns(t *testing.T) {
	loading := ordered
	loading.Load = "payload, state"
	eachKind(t, loading, func(t *testing.T, f *fixture) {
		f.add("a", "a1")
		f.add("b", "b1")
		got := map[int64]string{}
		jobs, err := f.q.ClaimLoading(context.Background(), 10, "w", time.Minute, func(scan func(dest ...any) (Job, error)) error {
			var payload, state string
			j, err := scan(&payload, &state)
			got[j.ID] = payload + "/" + state
			return err
		})
		if err != nil || len(jobs) != 2 {
			t.Fatalf("ClaimLoading = %v, %v; want two jobs", jobs, err)
		}
		for i, want := range []string{"a1/running", "b1/running"} {
			if got[jobs[i].ID] != want {
				t.Errorf("job %d loaded %q, want %q (its columns as claimed)", jobs[i].ID, got[jobs[i].ID], want)
			}
		}
	})
}

// CompleteAll records a batch in one transaction: the jobs still held are
// done with their own times and handed to also, one whose lease was lost is
// left alone, and an error of also leaves every job as it was.
func TestCompleteAllIsOneTransaction(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		f.add("b", "b1")
		f.add("c", "c1")
		jobs := f.claim(10, "w")
		lost := jobs[2]
		lost.Owner = "someone else"
		at := f.clk.Now().Add(-time.Second)
		batch := []Done{{Job: jobs[0], At: at}, {Job: jobs[1]}, {Job: lost}}
		if _, err := f.q.CompleteAll(ctx, batch, func(*sql.Tx, []Done) error { return errors.New("webhook table gone") }); err == nil {
			t.Fatal("CompleteAll succeeded although its hook failed")
		}
		if state, _, _ := f.row(jobs[0].ID); state != "running" {
			t.Fatalf("after the hook failed a1 is %s, want running (rolled back)", state)
		}
		var handed []Done
		done, err := f.q.CompleteAll(ctx, batch, func(_ *sql.Tx, d []Done) error { handed = d; return nil })
		if err != nil || len(done) != 2 || len(handed) != 2 {
			t.Fatalf("CompleteAll = %v, %v (hook saw %v); want the two jobs still held", done, err, handed)
		}
		var doneAt int64
		if err := f.db.QueryRow(`SELECT done_at FROM jobs_ordered WHERE id = $1`, jobs[0].ID).Scan(&doneAt); err != nil || doneAt != ms(at) {
			t.Fatalf("a1 done_at = %d (%v), want its own time %d", doneAt, err, ms(at))
		}
		if state, _, _ := f.row(jobs[2].ID); state != "running" {
			t.Fatalf("the job whose lease was lost is %s, want running (left alone)", state)
		}
	})
}

// Bury runs its hook in the same transaction: a failing hook leaves the
// job held by its claimer.
func TestBuryRunsItsHookInTheTransaction(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		j := f.claim(1, "w")[0]
		if err := f.q.Bury(ctx, j, "permanent", func(*sql.Tx) error { return errors.New("no") }); err == nil {
			t.Fatal("Bury succeeded although its hook failed")
		}
		if state, _, _ := f.row(j.ID); state != "running" {
			t.Fatalf("after the hook failed the job is %s, want running", state)
		}
		hooked := false
		if err := f.q.Bury(ctx, j, "permanent", func(*sql.Tx) error { hooked = true; return nil }); err != nil || !hooked {
			t.Fatalf("Bury = %v, hook ran %v", err, hooked)
		}
		if state, _, cause := f.row(j.ID); state != "dead" || cause != "permanent" {
			t.Fatalf("job is %s (%q), want dead (permanent)", state, cause)
		}
	})
}

// Postpone is not an attempt: the job waits until its time with its
// attempts as before the claim, and its partition waits with it.
func TestPostponeDoesNotCountAnAttempt(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		f.add("a", "a2")
		j := f.claim(1, "w")[0]
		if err := f.q.Postpone(ctx, j, "reach-out lock", f.clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if state, attempts, cause := f.row(j.ID); state != "pending" || attempts != 0 || cause != "reach-out lock" {
			t.Fatalf("postponed job: %s, %d attempts, %q; want pending, 0, the cause", state, attempts, cause)
		}
		if got := f.claim(10, "w"); len(got) != 0 {
			t.Fatalf("claimed %v while the chat's first job is postponed", f.payloads(got))
		}
		f.clk.Advance(time.Hour)
		if again := f.claim(10, "w"); len(again) != 1 || again[0].ID != j.ID || again[0].Attempts != 1 {
			t.Fatalf("after the postponement: %+v, want a1 at attempt 1", again)
		}
	})
}

// A dead job retried by an operator becomes its partition's first while a
// later job of the partition runs: it waits for that one to end, so a
// partition never has two jobs running.
func TestRetriedDeadJobWaitsForTheRunningOne(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		f.add("a", "a2")
		a1 := f.claim(1, "w")[0]
		if err := f.q.Bury(ctx, a1, "gave up", nil); err != nil {
			t.Fatal(err)
		}
		a2 := f.claim(1, "w")
		if len(a2) != 1 {
			t.Fatal("a2 was not claimed after a1 died")
		}
		if err := f.q.RetryOne(ctx, a1.ID); err != nil {
			t.Fatal(err)
		}
		if got := f.claim(10, "w"); len(got) != 0 {
			t.Fatalf("claimed %v while a2 of the same chat runs", f.payloads(got))
		}
		if err := f.q.Complete(ctx, a2[0], nil); err != nil {
			t.Fatal(err)
		}
		if got := f.payloads(f.claim(10, "w")); !same(got, []string{"a1"}) {
			t.Fatalf("after a2: claimed %v, want the retried a1", got)
		}
	})
}
