package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// The conformance suite: every rule of the engine, on SQLite and on
// PostgreSQL, over a partitioned table with a running state of its own (the
// shape of the outgoing queue) and an unordered one whose running jobs are
// pending rows under a lease (the shape of the webhook events).

var (
	ordered   = Table{Name: "jobs_ordered", Kind: "ordered", Partition: "chat", Pending: "pending", Running: "running", Done: "done", Dead: "dead", DoneAt: "done_at"}
	unordered = Table{Name: "jobs_unordered", Kind: "unordered", Pending: "pending", Running: "pending", Done: "delivered", Dead: "dead"}
)

func ddl(engine store.Engine, t Table) string {
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if engine == store.Postgres {
		id = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
	}
	return fmt.Sprintf(`CREATE TABLE %s (
		id %s, session_id TEXT NOT NULL, chat TEXT NOT NULL DEFAULT '', payload TEXT NOT NULL,
		state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run_at BIGINT NOT NULL,
		lease_owner TEXT, lease_until BIGINT, last_error TEXT NOT NULL DEFAULT '',
		updated_at BIGINT NOT NULL, done_at BIGINT)`, t.Name, id)
}

type fixture struct {
	t   *testing.T
	db  *sql.DB
	q   *Queue
	clk *testkit.Clock
}

func eachKind(t *testing.T, table Table, test func(t *testing.T, f *fixture)) {
	for _, engine := range testkit.Engines {
		t.Run(string(engine), func(t *testing.T) {
			st := testkit.Store(t, engine)
			if _, err := st.DB().Exec(ddl(engine, table)); err != nil {
				t.Fatal(err)
			}
			clk := testkit.NewClock(time.UnixMilli(1_800_000_000_000))
			q, err := New(st.DB(), engine, table, "s1", clk.Now)
			if err != nil {
				t.Fatal(err)
			}
			test(t, &fixture{t: t, db: st.DB(), q: q, clk: clk})
		})
	}
}

// add inserts a pending job due now and returns its id.
func (f *fixture) add(chat, payload string) int64 {
	f.t.Helper()
	now := ms(f.clk.Now())
	_, err := f.db.Exec(`INSERT INTO `+f.q.t.Name+` (session_id, chat, payload, state, run_at, updated_at)
		VALUES ('s1', $1, $2, 'pending', $3, $3)`, chat, payload, now)
	if err != nil {
		f.t.Fatal(err)
	}
	var id int64
	if err := f.db.QueryRow(`SELECT max(id) FROM ` + f.q.t.Name).Scan(&id); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) claim(n int, owner string) []Job {
	f.t.Helper()
	jobs, err := f.q.Claim(context.Background(), n, owner, 10*time.Second)
	if err != nil {
		f.t.Fatal(err)
	}
	return jobs
}

func (f *fixture) payloads(jobs []Job) []string {
	f.t.Helper()
	var out []string
	for _, j := range jobs {
		var p string
		if err := f.db.QueryRow(`SELECT payload FROM `+f.q.t.Name+` WHERE id = $1`, j.ID).Scan(&p); err != nil {
			f.t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func (f *fixture) row(id int64) (state string, attempts int, lastError string) {
	f.t.Helper()
	if err := f.db.QueryRow(`SELECT state, attempts, last_error FROM `+f.q.t.Name+` WHERE id = $1`, id).Scan(&state, &attempts, &lastError); err != nil {
		f.t.Fatal(err)
	}
	return state, attempts, lastError
}

func same(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// A partition's jobs run one at a time in id order; a job waiting for its
// retry holds back the later ones of its partition, never overtaken, while
// other partitions go on.
func TestPartitionOrderSurvivesRetries(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "a1")
		f.add("a", "a2")
		f.add("b", "b1")
		f.add("b", "b2")
		first := f.claim(10, "w")
		if got := f.payloads(first); !same(got, []string{"a1", "b1"}) {
			t.Fatalf("first claim %v, want each chat's first: [a1 b1]", got)
		}
		if again := f.claim(10, "w"); len(again) != 0 {
			t.Fatalf("claimed %v while each chat's first runs", f.payloads(again))
		}
		if err := f.q.Retry(ctx, first[0], "boom", f.clk.Now().Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := f.q.Complete(ctx, first[1], nil); err != nil {
			t.Fatal(err)
		}
		b2 := f.claim(10, "w")
		if got := f.payloads(b2); !same(got, []string{"b2"}) {
			t.Fatalf("while a1 waits for its retry: claimed %v, want [b2] (a2 must not overtake a1)", got)
		}
		if err := f.q.Complete(ctx, b2[0], nil); err != nil {
			t.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		retried := f.claim(10, "w")
		if got := f.payloads(retried); !same(got, []string{"a1"}) || retried[0].Attempts != 2 {
			t.Fatalf("after the retry delay: claimed %v (%+v), want a1 at attempt 2", got, retried)
		}
		if err := f.q.Complete(ctx, retried[0], nil); err != nil {
			t.Fatal(err)
		}
		if got := f.payloads(f.claim(10, "w")); !same(got, []string{"a2"}) {
			t.Fatalf("after a1: claimed %v, want [a2]", got)
		}
	})
}

// A job whose worker died is due again when its lease ends; the dead
// worker's late outcome is refused, the new claimer's counts.
func TestExpiredLeaseIsRescued(t *testing.T) {
	for _, table := range []Table{ordered, unordered} {
		t.Run(table.Name, func(t *testing.T) {
			eachKind(t, table, func(t *testing.T, f *fixture) {
				ctx := context.Background()
				id := f.add("a", "x")
				lost := f.claim(1, "dead-worker")
				if len(f.claim(1, "other")) != 0 {
					t.Fatal("a job under a live lease was claimed again")
				}
				f.clk.Advance(11 * time.Second)
				rescued := f.claim(1, "other")
				if len(rescued) != 1 || rescued[0].ID != id || rescued[0].Attempts != 2 {
					t.Fatalf("after the lease ended: %+v, want job %d at attempt 2", rescued, id)
				}
				if err := f.q.Complete(ctx, lost[0], nil); !errors.Is(err, ErrLeaseLost) {
					t.Fatalf("the dead worker's Complete: %v, want ErrLeaseLost", err)
				}
				if err := f.q.Complete(ctx, rescued[0], nil); err != nil {
					t.Fatal(err)
				}
				if state, _, _ := f.row(id); state != table.Done {
					t.Fatalf("state %q, want %q", state, table.Done)
				}
			})
		})
	}
}

// Complete's own writes commit with the state change or not at all.
func TestCompleteCommitsTheCallersWritesWithIt(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		if _, err := f.db.Exec(`CREATE TABLE jobs_report (what TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		id := f.add("a", "x")
		j := f.claim(1, "w")[0]
		refused := errors.New("refused")
		err := f.q.Complete(ctx, j, func(tx *sql.Tx) error {
			if _, err := tx.Exec(`INSERT INTO jobs_report (what) VALUES ('done')`); err != nil {
				return err
			}
			return refused
		})
		if !errors.Is(err, refused) {
			t.Fatalf("Complete = %v, want the hook's error", err)
		}
		var n int
		f.db.QueryRow(`SELECT count(*) FROM jobs_report`).Scan(&n)
		if state, _, _ := f.row(id); state != "running" || n != 0 {
			t.Fatalf("after a failed hook: state %q and %d reports, want running and none", state, n)
		}
		err = f.q.Complete(ctx, j, func(tx *sql.Tx) error {
			_, err := tx.Exec(`INSERT INTO jobs_report (what) VALUES ('done')`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		f.db.QueryRow(`SELECT count(*) FROM jobs_report`).Scan(&n)
		var doneAt sql.NullInt64
		f.db.QueryRow(`SELECT done_at FROM jobs_ordered WHERE id = $1`, id).Scan(&doneAt)
		if state, _, _ := f.row(id); state != "done" || n != 1 || doneAt.Int64 != ms(f.clk.Now()) {
			t.Fatalf("state %q, %d reports, done_at %v", state, n, doneAt)
		}
	})
}

// A job given back at shutdown is due again at once and its claim is not
// counted; the policy retries until MaxAttempts, then buries; an operator
// revives or purges the dead.
func TestReleaseFailRetryPurge(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		p := Policy{MaxAttempts: 2, Backoff: backoff.Policy{Base: time.Second, Max: time.Second}}
		id := f.add("a", "x")
		if err := f.q.Release(ctx, f.claim(1, "w")[0]); err != nil {
			t.Fatal(err)
		}
		j := f.claim(1, "w")
		if len(j) != 1 || j[0].Attempts != 1 {
			t.Fatalf("after Release: %+v, want the job again at attempt 1", j)
		}
		if dead, err := f.q.Fail(ctx, j[0], "first", p); dead || err != nil {
			t.Fatalf("first failure: dead %v, %v", dead, err)
		}
		f.clk.Advance(time.Second)
		j = f.claim(1, "w")
		if dead, err := f.q.Fail(ctx, j[0], "second", p); !dead || err != nil {
			t.Fatalf("failure at MaxAttempts: dead %v, %v", dead, err)
		}
		if state, attempts, last := f.row(id); state != "dead" || attempts != 2 || last != "second" {
			t.Fatalf("buried job: %q %d %q", state, attempts, last)
		}
		d, err := f.q.Depths(ctx)
		if err != nil || d["dead"] != 1 || d["pending"] != 0 || d["running"] != 0 || d["done"] != 0 {
			t.Fatalf("depths %v, %v", d, err)
		}
		if len(f.claim(1, "w")) != 0 {
			t.Fatal("a dead job was claimed")
		}
		if err := f.q.PurgeOne(ctx, f.add("b", "open")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("purging an open job: %v, want ErrNotFound", err)
		}
		if err := f.q.RetryOne(ctx, id); err != nil {
			t.Fatal(err)
		}
		if state, attempts, _ := f.row(id); state != "pending" || attempts != 0 {
			t.Fatalf("revived job: %q at %d attempts", state, attempts)
		}
		if err := f.q.RetryOne(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("reviving a pending job: %v, want ErrNotFound", err)
		}
		j = f.claim(10, "w")
		for _, job := range j {
			f.q.Bury(ctx, job, "again", nil)
		}
		if n, err := f.q.PurgeDead(ctx); err != nil || n != 2 {
			t.Fatalf("PurgeDead = %d, %v; want both", n, err)
		}
	})
}

// Done jobs are pruned after their retention; open and dead ones stay.
func TestPruneDeletesOnlyOldDoneJobs(t *testing.T) {
	eachKind(t, unordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		old := f.add("", "old")
		f.q.Complete(ctx, f.claim(1, "w")[0], nil)
		f.add("", "dead")
		f.q.Bury(ctx, f.claim(1, "w")[0], "x", nil)
		f.clk.Advance(time.Hour)
		recent := f.add("", "recent")
		f.q.Complete(ctx, f.claim(1, "w")[0], nil)
		open := f.add("", "open")
		n, err := f.q.Prune(ctx, f.clk.Now().Add(-time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("Prune = %d, %v; want 1", n, err)
		}
		var left []int64
		rows, _ := f.db.Query(`SELECT id FROM jobs_unordered ORDER BY id`)
		for rows.Next() {
			var id int64
			rows.Scan(&id)
			left = append(left, id)
		}
		rows.Close()
		if fmt.Sprint(left) != fmt.Sprint([]int64{old + 1, recent, open}) {
			t.Fatalf("left %v; want the dead, the recent and the open job", left)
		}
	})
}

// Unordered jobs are claimed by due time, several at once; NextDue says
// when the next one is due, a running one's when its lease ends.
func TestUnorderedClaimsByDueTime(t *testing.T) {
	eachKind(t, unordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		if _, ok, err := f.q.NextDue(ctx); ok || err != nil {
			t.Fatalf("NextDue on an empty queue: %v, %v", ok, err)
		}
		a, b := f.add("", "a"), f.add("", "b")
		j := f.claim(1, "w")
		if len(j) != 1 || j[0].ID != a {
			t.Fatalf("claimed %+v, want the oldest", j)
		}
		if err := f.q.Retry(ctx, j[0], "later", f.clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		next, ok, err := f.q.NextDue(ctx)
		if !ok || err != nil || !next.Equal(f.clk.Now().Add(time.Hour)) {
			t.Fatalf("NextDue = %v %v %v, want a's retry in an hour (b, due already, is claimable)", next, ok, err)
		}
		j = f.claim(5, "w")
		if len(j) != 1 || j[0].ID != b {
			t.Fatalf("claimed %+v, want b only (a waits an hour)", j)
		}
		next, _, _ = f.q.NextDue(ctx)
		if want := f.clk.Now().Add(10 * time.Second); !next.Equal(want) {
			t.Fatalf("NextDue = %v, want b's lease end %v", next, want)
		}
	})
}

// Several workers claiming at once: every job is done exactly once, and
// each partition's jobs complete in id order.
func TestConcurrentClaimersDoEachJobOnceInOrder(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		const chats, perChat = 10, 20
		for i := range perChat {
			for c := range chats {
				f.add(fmt.Sprintf("c%d", c), fmt.Sprintf("c%d-%02d", c, i))
			}
		}
		var mu sync.Mutex
		done := map[string][]int64{}
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				owner := fmt.Sprintf("w%d", w)
				for {
					jobs, err := f.q.Claim(ctx, 3, owner, time.Minute)
					if err != nil {
						t.Error(err)
						return
					}
					if len(jobs) == 0 {
						d, _ := f.q.Depths(ctx)
						if d["pending"]+d["running"] == 0 {
							return
						}
						continue
					}
					for _, j := range jobs {
						// Recorded inside the completing transaction: the next
						// job of the chat cannot be claimed before it commits.
						err := f.q.Complete(ctx, j, func(*sql.Tx) error {
							mu.Lock()
							done[j.Partition] = append(done[j.Partition], j.ID)
							mu.Unlock()
							return nil
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		wg.Wait()
		total := 0
		for chat, ids := range done {
			total += len(ids)
			for i := 1; i < len(ids); i++ {
				if ids[i] <= ids[i-1] {
					t.Errorf("chat %s completed out of order: %v", chat, ids)
					break
				}
			}
		}
		if total != chats*perChat {
			t.Errorf("%d jobs done, want %d", total, chats*perChat)
		}
	})
}

func TestNewRefusesOddNames(t *testing.T) {
	for _, tb := range []Table{
		{Name: "x; DROP TABLE y", Kind: "k", Pending: "p", Running: "r", Done: "d", Dead: "x"},
		{Name: "ok", Kind: "k", Partition: "chat)", Pending: "p", Running: "r", Done: "d", Dead: "x"},
		{Name: "ok", Kind: "k", Pending: "p", Running: "r", Done: "d"},
	} {
		if _, err := New(nil, store.SQLite, tb, "s", nil); err == nil {
			t.Errorf("New accepted %+v", tb)
		}
	}
}

// The account's new holder takes back a dead process's claims at once.
func TestReclaimAllFreesEveryLease(t *testing.T) {
	for _, table := range []Table{ordered, unordered} {
		t.Run(table.Name, func(t *testing.T) {
			eachKind(t, table, func(t *testing.T, f *fixture) {
				ctx := context.Background()
				a := f.add("a", "x")
				f.add("b", "y")
				f.claim(10, "dead-process")
				if n, err := f.q.ReclaimAll(ctx); err != nil || n != 2 {
					t.Fatalf("ReclaimAll = %d, %v; want 2", n, err)
				}
				j := f.claim(10, "new-holder")
				if len(j) != 2 || j[0].ID != a || j[0].Attempts != 2 {
					t.Fatalf("after ReclaimAll: %+v, want both at once, attempts kept", j)
				}
			})
		})
	}
}

// The metrics say each kind's depths, its lag and what this process did.
func TestMetrics(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		f.add("a", "1")
		f.add("b", "2")
		f.add("c", "3")
		j := f.claim(2, "w")
		f.q.Complete(ctx, j[0], nil)
		f.q.Retry(ctx, j[1], "x", f.clk.Now().Add(time.Minute))
		f.clk.Advance(90 * time.Second) // c has waited 90 s, the retry 30 s past its time
		want := `
# HELP blacksky_jobs Jobs by kind and state.
# TYPE blacksky_jobs gauge
blacksky_jobs{kind="ordered",state="dead"} 0
blacksky_jobs{kind="ordered",state="done"} 1
blacksky_jobs{kind="ordered",state="pending"} 2
blacksky_jobs{kind="ordered",state="running"} 0
# HELP blacksky_jobs_claimed_total Jobs this process claimed (attempts begun).
# TYPE blacksky_jobs_claimed_total counter
blacksky_jobs_claimed_total{kind="ordered"} 2
# HELP blacksky_jobs_completed_total Jobs this process completed.
# TYPE blacksky_jobs_completed_total counter
blacksky_jobs_completed_total{kind="ordered"} 1
# HELP blacksky_jobs_lag_seconds How long the most overdue job that is due and not running has waited; 0 when none waits.
# TYPE blacksky_jobs_lag_seconds gauge
blacksky_jobs_lag_seconds{kind="ordered"} 90
# HELP blacksky_jobs_retried_total Failed attempts this process scheduled for another.
# TYPE blacksky_jobs_retried_total counter
blacksky_jobs_retried_total{kind="ordered"} 1
`
		if err := promtestutil.CollectAndCompare(Collector(f.q), strings.NewReader(want),
			"blacksky_jobs", "blacksky_jobs_claimed_total", "blacksky_jobs_completed_total", "blacksky_jobs_lag_seconds", "blacksky_jobs_retried_total"); err != nil {
			t.Error(err)
		}
	})
}

// An operator lists a kind's jobs by state, newest first, a page at a time.
func TestList(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		for i := range 5 {
			f.add(fmt.Sprintf("c%d", i), "x")
		}
		for _, j := range f.claim(2, "w") {
			f.q.Bury(ctx, j, "gave up: "+j.Partition, nil)
		}
		dead, err := f.q.List(ctx, "dead", 0, 10)
		if err != nil || len(dead) != 2 || dead[0].Partition != "c1" || dead[0].LastError != "gave up: c1" || dead[0].Attempts != 1 {
			t.Fatalf("dead jobs %+v, %v", dead, err)
		}
		page, err := f.q.List(ctx, "", 0, 3)
		if err != nil || len(page) != 3 || page[0].Partition != "c4" {
			t.Fatalf("first page %+v, %v", page, err)
		}
		rest, err := f.q.List(ctx, "", page[2].ID, 3)
		if err != nil || len(rest) != 2 || rest[1].Partition != "c0" {
			t.Fatalf("second page %+v, %v", rest, err)
		}
	})
}

// A done job made pending again (a message to send once more) is due at
// once with its attempts reset, and in a partition it goes before the
// partition's later open jobs; open and dead jobs are not touched.
func TestRedoDoneReopensOnlyDoneJobs(t *testing.T) {
	eachKind(t, ordered, func(t *testing.T, f *fixture) {
		ctx := context.Background()
		first := f.add("a", "first")
		f.q.Complete(ctx, f.claim(1, "w")[0], nil)
		later := f.add("a", "later")
		dead := f.add("b", "dead")
		for _, j := range f.claim(10, "w") {
			if j.ID == dead {
				f.q.Bury(ctx, j, "gone", nil)
			} else {
				f.q.Release(ctx, j)
			}
		}
		n, err := f.q.RedoDone(ctx, f.db, []int64{first, later, dead})
		if err != nil || n != 1 {
			t.Fatalf("RedoDone = %d, %v; want only the done job", n, err)
		}
		if state, attempts, _ := f.row(dead); state != "dead" || attempts != 1 {
			t.Errorf("the dead job became %q at %d attempts", state, attempts)
		}
		j := f.claim(10, "w")
		if got := f.payloads(j); !same(got, []string{"first"}) || j[0].Attempts != 1 {
			t.Fatalf("claimed %v (attempt %d); want the job done before, alone in its chat, at its first attempt", got, j[0].Attempts)
		}
	})
}
