package outgoing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

var waIDPattern = regexp.MustCompile(`^3EB0[0-9A-F]{16}$`)

func TestEnqueueGetRoundTrip(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clock := newFakeClock()
		q := e.queue(t, Options{Now: clock.Now})
		m, created, err := q.Enqueue(ctx, Request{To: "+49 151 2345 6789", Text: "hello ✓"})
		if err != nil || !created {
			t.Fatalf("Enqueue = %v, %v", created, err)
		}
		if m.ID == 0 || m.To != "4915123456789@s.whatsapp.net" || m.Text != "hello ✓" || m.State != Pending || m.Attempts != 0 {
			t.Fatalf("enqueued message = %+v", m)
		}
		if !waIDPattern.MatchString(m.WAID) {
			t.Fatalf("WAID %q is not a WhatsApp web message ID", m.WAID)
		}
		if !m.CreatedAt.Equal(clock.Now()) || !m.NextAttemptAt.Equal(clock.Now()) {
			t.Fatalf("times = %v, %v; want %v", m.CreatedAt, m.NextAttemptAt, clock.Now())
		}
		got, err := q.Get(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got != m {
			t.Fatalf("Get = %+v\nwant  %+v", got, m)
		}
		if _, err := q.Get(ctx, m.ID+1000); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of a missing id = %v; want ErrNotFound", err)
		}
		group := mustEnqueue(t, q, "120363025246125486@g.us", "to a group")
		list, err := q.List(ctx, Filter{})
		if err != nil || len(list) != 2 || list[0].ID != group.ID || list[1].ID != m.ID {
			t.Fatalf("List = %v, %v; want newest first", list, err)
		}
		if list, _ := q.List(ctx, Filter{To: "4915123456789", Limit: 10}); len(list) != 1 || list[0].ID != m.ID {
			t.Fatalf("List by chat = %v", list)
		}
		if list, _ := q.List(ctx, Filter{BeforeID: group.ID}); len(list) != 1 || list[0].ID != m.ID {
			t.Fatalf("List before %d = %v", group.ID, list)
		}
		if list, _ := q.List(ctx, Filter{State: Sent}); len(list) != 0 {
			t.Fatalf("List of sent = %v; want none", list)
		}
		other := e.queue(t, Options{Session: "other"})
		if _, err := other.Get(ctx, m.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("another session sees the message: %v", err)
		}
	})
}

// TestLIDRecipientIsItsPhoneNumberChat: a message to a contact's LID joins
// the chat of its phone number when whatsmeow's LID map knows it, so the
// contact's messages keep one order whichever address names it; reads and
// Settled show the LID beside the number.
func TestLIDRecipientIsItsPhoneNumberChat(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var mu sync.Mutex
		var settled []Message
		q := e.queue(t, Options{Settled: func(_ context.Context, _ *sql.Tx, msgs []Message) error {
			mu.Lock()
			defer mu.Unlock()
			settled = append(settled, msgs...)
			return nil
		}})
		unknown := mustEnqueue(t, q, "299999999999999@lid", "to an unmapped LID")
		if unknown.To != "299999999999999@lid" {
			t.Fatalf("unmapped LID recipient stored as %q", unknown.To)
		}
		if _, err := e.open(t).DB().ExecContext(ctx, "INSERT INTO whatsmeow_lid_map (lid, pn) VALUES ('211111111111111', '4915123456789')"); err != nil {
			t.Fatal(err)
		}
		byNumber := mustEnqueue(t, q, "+4915123456789", "by number")
		byLID := mustEnqueue(t, q, "211111111111111@lid", "by LID")
		if byLID.To != byNumber.To || byNumber.To != "4915123456789@s.whatsapp.net" {
			t.Fatalf("by number to %q, by LID to %q; want one chat 4915123456789@s.whatsapp.net", byNumber.To, byLID.To)
		}
		const lid = "211111111111111@lid"
		if got, err := q.Get(ctx, byLID.ID); err != nil || got.ToLID != lid {
			t.Fatalf("Get: to_lid %q, %v; want %s", got.ToLID, err, lid)
		}
		list, err := q.List(ctx, Filter{})
		if err != nil || len(list) != 3 || list[0].ToLID != lid || list[1].ToLID != lid || list[2].ToLID != "" {
			t.Fatalf("List: %+v, %v; want the LID beside the number, none for the unmapped LID", list, err)
		}
		run(t, q, &recorder{}, NewSwitchGate(true))
		waitState(t, q, byLID.ID, Sent)
		mu.Lock()
		defer mu.Unlock()
		for _, m := range settled {
			if m.To == byNumber.To && m.ToLID != lid {
				t.Errorf("Settled got %+v without the LID", m)
			}
		}
	})
}

func TestEnqueueValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		bad := []Request{
			{To: "", Text: "x"},
			{To: "not a number", Text: "x"},
			{To: "0151234567", Text: "x"},
			{To: "4915123456789:3@s.whatsapp.net", Text: "x"},
			{To: "4915123456789@example.com", Text: "x"},
			{To: "4915123456789@s.whatsapp.net", Text: ""},
			{To: "4915123456789@s.whatsapp.net", Text: "  \n"},
			{To: "4915123456789@s.whatsapp.net", Text: strings.Repeat("x", MaxTextBytes+1)},
			{To: "4915123456789@s.whatsapp.net", Text: "bad \xff utf-8"},
			{To: "4915123456789@s.whatsapp.net", Text: "nul \x00"},
			{To: "4915123456789@s.whatsapp.net", Text: "x", IdempotencyKey: strings.Repeat("k", MaxIdempotencyKeyBytes+1)},
		}
		for _, req := range bad {
			if _, _, err := q.Enqueue(context.Background(), req); !errors.Is(err, ErrInvalid) {
				t.Errorf("Enqueue(%.40q, %.40q) = %v; want ErrInvalid", req.To, req.Text, err)
			}
		}
		if _, _, err := q.Enqueue(context.Background(), Request{To: "4915123456789@s.whatsapp.net", Text: strings.Repeat("x", MaxTextBytes)}); err != nil {
			t.Errorf("Enqueue of the longest text: %v", err)
		}
		if d, _ := q.Depths(context.Background()); d[Pending] != 1 {
			t.Errorf("depths = %v; want only the valid message stored", d)
		}
	})
}

func TestIdempotencyKey(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.queue(t, Options{})
		first, created, err := q.Enqueue(ctx, Request{To: chatJID(1), Text: "once", IdempotencyKey: "order-1"})
		if err != nil || !created {
			t.Fatalf("first Enqueue = %v, %v", created, err)
		}
		again, created, err := q.Enqueue(ctx, Request{To: chatJID(2), Text: "different", IdempotencyKey: "order-1"})
		if err != nil || created || again != first {
			t.Fatalf("repeat Enqueue = %+v, %v, %v; want the original, not created", again, created, err)
		}

		// Two processes race with one key: one message, both get it.
		q2 := e.queue(t, Options{})
		const racers = 8
		var wg sync.WaitGroup
		results := make([]Message, racers)
		createdBy := make([]bool, racers)
		errs := make([]error, racers)
		for i := range racers {
			qq := q
			if i%2 == 1 {
				qq = q2
			}
			wg.Go(func() {
				results[i], createdBy[i], errs[i] = qq.Enqueue(ctx, Request{To: chatJID(3), Text: "race", IdempotencyKey: "order-2"})
			})
		}
		wg.Wait()
		creations := 0
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("racer %d: %v", i, errs[i])
			}
			if results[i].ID != results[0].ID || results[i].WAID != results[0].WAID {
				t.Fatalf("racer %d got message %d, racer 0 got %d", i, results[i].ID, results[0].ID)
			}
			if createdBy[i] {
				creations++
			}
		}
		if creations != 1 {
			t.Fatalf("%d racers created the message; want 1", creations)
		}
		if d, _ := q.Depths(ctx); d[Pending] != 2 {
			t.Fatalf("depths = %v; want 2 pending", d)
		}
	})
}

func TestBacklogBound(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.queue(t, Options{MaxPending: 3})
		keyed, _, err := q.Enqueue(ctx, Request{To: chatJID(1), Text: "1", IdempotencyKey: "k"})
		if err != nil {
			t.Fatal(err)
		}
		mustEnqueue(t, q, chatJID(1), "2")
		third := mustEnqueue(t, q, chatJID(2), "3")
		_, _, err = q.Enqueue(ctx, Request{To: chatJID(3), Text: "4"})
		if !errors.Is(err, ErrBacklogFull) {
			t.Fatalf("Enqueue past MaxPending = %v; want ErrBacklogFull", err)
		}
		// A repeat of an accepted message is not new work: still answered.
		if m, created, err := q.Enqueue(ctx, Request{To: chatJID(1), Text: "1", IdempotencyKey: "k"}); err != nil || created || m.ID != keyed.ID {
			t.Fatalf("idempotent repeat at the bound = %v, %v, %v", m.ID, created, err)
		}
		// Room is made when a message leaves the backlog.
		sender := &recorder{fail: func(_ context.Context, m Message, _ int) error {
			if m.ID == third.ID {
				return nil
			}
			return Permanent(errors.New("no"))
		}}
		stop := run(t, q, sender, NewSwitchGate(true))
		waitState(t, q, third.ID, Sent)
		stop()
		mustEnqueue(t, q, chatJID(3), "4")
	})
}

func TestRetryAndPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.queue(t, Options{})
		a := mustEnqueue(t, q, chatJID(1), "a")
		b := mustEnqueue(t, q, chatJID(2), "b")
		c := mustEnqueue(t, q, chatJID(3), "c")
		if _, err := q.Retry(ctx, a.ID); !errors.Is(err, ErrWrongState) {
			t.Fatalf("Retry of a pending message = %v; want ErrWrongState", err)
		}
		if err := q.Purge(ctx, a.ID); !errors.Is(err, ErrWrongState) {
			t.Fatalf("Purge of a pending message = %v; want ErrWrongState", err)
		}
		if _, err := q.Retry(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Retry of a missing message = %v; want ErrNotFound", err)
		}
		if err := q.Purge(ctx, 999999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Purge of a missing message = %v; want ErrNotFound", err)
		}

		sender, heal := failingUntilHealed(Permanent(errors.New("invalid number")))
		stop := run(t, q, sender, NewSwitchGate(true))
		for _, m := range []Message{a, b, c} {
			waitState(t, q, m.ID, Dead)
		}
		stop()
		dead, err := q.List(ctx, Filter{State: Dead})
		if err != nil || len(dead) != 3 {
			t.Fatalf("dead messages = %v, %v; want 3 visible", dead, err)
		}

		if err := q.Purge(ctx, c.ID); err != nil {
			t.Fatalf("Purge of a dead message: %v", err)
		}
		if _, err := q.Get(ctx, c.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("purged message still there: %v", err)
		}
		heal()
		retried, err := q.Retry(ctx, a.ID)
		if err != nil || retried.State != Pending || retried.Attempts != 0 || retried.WAID != a.WAID {
			t.Fatalf("Retry = %+v, %v", retried, err)
		}
		run(t, q, sender, NewSwitchGate(true))
		sent := waitState(t, q, a.ID, Sent)
		if sent.WAID != a.WAID || sent.Attempts != 1 {
			t.Fatalf("retried message sent as %+v", sent)
		}
		if n, err := q.PurgeDead(ctx); err != nil || n != 1 {
			t.Fatalf("PurgeDead = %d, %v; want 1 (b)", n, err)
		}
		if d, _ := q.Depths(ctx); d[Dead] != 0 || d[Sent] != 1 {
			t.Fatalf("depths = %v", d)
		}
	})
}

func TestRetryAllDead(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.queue(t, Options{})
		var ids []int64
		for i := range 3 {
			ids = append(ids, mustEnqueue(t, q, chatJID(i), "x").ID)
		}
		sender, heal := failingUntilHealed(Permanent(errors.New("too large")))
		run(t, q, sender, NewSwitchGate(true))
		for _, id := range ids {
			waitState(t, q, id, Dead)
		}
		heal()
		if n, err := q.RetryAllDead(ctx); err != nil || n != 3 {
			t.Fatalf("RetryAllDead = %d, %v", n, err)
		}
		for _, id := range ids {
			waitState(t, q, id, Sent)
		}
	})
}

func TestFindSentAndPrune(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clock := newFakeClock()
		q := e.queue(t, Options{Now: clock.Now, Retention: time.Hour})
		m := mustEnqueue(t, q, chatJID(1), "keep me for retries")
		if _, ok, _ := q.FindSent(ctx, m.To, m.WAID); ok {
			t.Fatal("FindSent found a message not yet sent")
		}
		stop := run(t, q, &recorder{}, NewSwitchGate(true))
		waitState(t, q, m.ID, Sent)
		stop()
		got, ok, err := q.FindSent(ctx, m.To, m.WAID)
		if err != nil || !ok || got.Text != m.Text {
			t.Fatalf("FindSent = %+v, %v, %v", got, ok, err)
		}
		if _, ok, _ := q.FindSent(ctx, chatJID(2), m.WAID); ok {
			t.Fatal("FindSent matched another chat")
		}
		if msg := RetryMessageFunc(q)(jidOf(t, chatJID(1)), jidOf(t, chatJID(1)), typesID(m.WAID)); msg.GetConversation() != m.Text {
			t.Fatalf("retry message = %v", msg)
		}
		record(t, q, receipt(m, Delivered, clock.Now()))
		if n, err := q.Prune(ctx); err != nil || n != 0 {
			t.Fatalf("Prune within retention = %d, %v", n, err)
		}
		clock.Advance(time.Hour + time.Second)
		if n, err := q.Prune(ctx); err != nil || n != 1 {
			t.Fatalf("Prune past retention = %d, %v", n, err)
		}
		var receipts int
		if err := q.db.QueryRow("SELECT count(*) FROM blacksky_receipts").Scan(&receipts); err != nil || receipts != 0 {
			t.Errorf("%d receipts left after pruning their message (%v)", receipts, err)
		}
		if _, ok, _ := q.FindSent(ctx, m.To, m.WAID); ok {
			t.Fatal("pruned message still found")
		}
		if msg := RetryMessageFunc(q)(jidOf(t, chatJID(1)), jidOf(t, chatJID(1)), typesID(m.WAID)); msg != nil {
			t.Fatalf("retry message after prune = %v; want nil", msg)
		}
	})
}

func TestDepthsAndOldestAge(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clock := newFakeClock()
		q := e.queue(t, Options{Now: clock.Now})
		if age, err := q.OldestPendingAge(ctx); err != nil || age != 0 {
			t.Fatalf("OldestPendingAge of an empty queue = %v, %v", age, err)
		}
		mustEnqueue(t, q, chatJID(1), "old")
		clock.Advance(time.Minute)
		mustEnqueue(t, q, chatJID(2), "new")
		clock.Advance(time.Minute)
		if age, err := q.OldestPendingAge(ctx); err != nil || age != 2*time.Minute {
			t.Fatalf("OldestPendingAge = %v, %v; want 2m", age, err)
		}
		d, err := q.Depths(ctx)
		if err != nil || len(d) != len(States()) || d[Pending] != 2 || d[Sent] != 0 {
			t.Fatalf("Depths = %v, %v", d, err)
		}
	})
}

// TestConcurrentEnqueues has many callers in two processes enqueue at once,
// as the HTTP API does under load: the batches they share must keep the
// backlog bound exact and each caller's messages in its order.
func TestConcurrentEnqueues(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const callers, each, bound = 16, 10, 100
		queues := []*Queue{e.queue(t, Options{MaxPending: bound}), e.queue(t, Options{MaxPending: bound})}
		got := make([][]Message, callers)
		errs := make([][]error, callers)
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				q := queues[c%2]
				for i := range each {
					m, created, err := q.Enqueue(ctx, Request{To: chatJID(c), Text: fmt.Sprintf("%d-%d", c, i)})
					if err == nil && !created {
						err = errors.New("not created")
					}
					got[c] = append(got[c], m)
					errs[c] = append(errs[c], err)
				}
			})
		}
		wg.Wait()
		stored := 0
		for c := range callers {
			refused := false
			for i, err := range errs[c] {
				switch {
				case errors.Is(err, ErrBacklogFull):
					refused = true
				case err != nil:
					t.Fatalf("caller %d, message %d: %v", c, i, err)
				case refused:
					t.Fatalf("caller %d: message %d stored after an earlier one was refused; nothing left the backlog", c, i)
				default:
					stored++
					if want := fmt.Sprintf("%d-%d", c, i); got[c][i].Text != want || got[c][i].To != chatJID(c) {
						t.Fatalf("caller %d got back %q to %s; want %q", c, got[c][i].Text, got[c][i].To, want)
					}
					if i > 0 && got[c][i].ID <= got[c][i-1].ID {
						t.Fatalf("caller %d: message %d has id %d after %d; FIFO needs ids in enqueue order", c, i, got[c][i].ID, got[c][i-1].ID)
					}
				}
			}
		}
		if stored != bound {
			t.Fatalf("%d messages stored; want exactly OUTGOING_MAX_PENDING = %d", stored, bound)
		}
		if d, _ := queues[0].Depths(ctx); d[Pending] != bound {
			t.Fatalf("depths = %v; want %d pending", d, bound)
		}
	})
}

// TestListPreview: a list with a preview reads each text only up to that
// many characters, cut on a character, and marks what it cut.
func TestListPreview(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.queue(t, Options{})
		texts := []string{strings.Repeat("é", 10), strings.Repeat("é", 11), "😀" + strings.Repeat("a", 20), "ok"}
		for _, text := range texts {
			mustEnqueue(t, q, chatJID(1), text)
		}
		list, err := q.List(ctx, Filter{Preview: 10})
		if err != nil || len(list) != len(texts) {
			t.Fatalf("List = %d, %v", len(list), err)
		}
		want := []struct {
			text string
			cut  bool
		}{{"ok", false}, {"😀" + strings.Repeat("a", 9), true}, {strings.Repeat("é", 10), true}, {strings.Repeat("é", 10), false}}
		for i, w := range want {
			if list[i].Text != w.text || list[i].TextTruncated != w.cut {
				t.Errorf("message %d: %q (cut %v), want %q (cut %v)", i, list[i].Text, list[i].TextTruncated, w.text, w.cut)
			}
		}
		if full, _ := q.List(ctx, Filter{}); full[2].Text != texts[1] || full[2].TextTruncated {
			t.Errorf("without a preview: %q (cut %v)", full[2].Text, full[2].TextTruncated)
		}
	})
}

// The queue summary must not read the messages themselves: on SQLite a
// row's state is stored after its text, so reading it walks every overflow
// page of a long text (issue 13, case 7; BenchmarkQueueSummary on 20,000
// messages of 64 KiB: 385 ms before, 2.3 ms after; PostgreSQL 12.6 and 3.9
// ms). Every count of the engine's Depths must run on an index alone.
func TestDepthsUseIndexes(t *testing.T) {
	e := newEnv(t, store.SQLite)
	q := e.queue(t, Options{})
	for _, c := range []struct {
		name, query string
		scans       int
	}{
		{"the engine's counts (/api/v1/jobs)", jobs.DepthsSQL(Table), 4},
		{"the open and dead counts", openDepthsSQL, 3},
		{"the sent counts by receipt", sentDepthsSQL, 1},
	} {
		plan := queryPlan(t, q.db, c.query, "s")
		scans := 0
		for _, detail := range plan {
			if strings.Contains(detail, "blacksky_outbox") {
				scans++
				if !strings.Contains(detail, "COVERING INDEX") {
					t.Errorf("%s: a count reads the rows: %s", c.name, detail)
				}
			}
		}
		if scans != c.scans {
			t.Errorf("%s: %d of the %d counts found in the plan %q", c.name, scans, c.scans, plan)
		}
	}
}

// queryPlan is SQLite's plan of query, one detail per step.
func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// The engine's lag (a metric and /api/v1/jobs, on every scrape) must not
// read the waiting messages either: pending ones are found on the index of
// their run_at alone, and sending ones (a few, under lease) on theirs.
func TestLagUsesIndexes(t *testing.T) {
	e := newEnv(t, store.SQLite)
	q := e.queue(t, Options{})
	var plan []string
	for _, detail := range queryPlan(t, q.db, jobs.LagSQL(Table), "s", 0) {
		if strings.Contains(detail, "blacksky_outbox") {
			plan = append(plan, detail)
		}
	}
	if len(plan) != 2 || !strings.Contains(plan[0], "COVERING INDEX blacksky_outbox_run_at") || !strings.Contains(plan[1], "INDEX blacksky_outbox_sending") {
		t.Errorf("lag plan %q; want the pending rows' run_at index alone, then the sending rows' index", plan)
	}
}

// Issue 13, case 9: on SQLite (WAL, synchronous=NORMAL) a commit survives
// the process dying but not power loss; an enqueue is answered 202 once its
// commit returns, so that commit is made durable (synchronous=FULL), and the
// commits of delivery are not.
func TestEnqueueCommitsAreDurable(t *testing.T) {
	e := newEnv(t, store.SQLite)
	q := e.queue(t, Options{})
	before := sqlitedb.StatsOf(q.db).DurableCommits
	mustEnqueue(t, q, chatJID(1), "one")
	mustEnqueue(t, q, chatJID(1), "two")
	if n := sqlitedb.StatsOf(q.db).DurableCommits - before; n != 2 {
		t.Errorf("%d durable commits for 2 enqueues; want 2", n)
	}
	before = sqlitedb.StatsOf(q.db).DurableCommits
	r := &recorder{}
	stop := run(t, q, r, NewSwitchGate(true))
	testkit.WaitFor(t, "both sent", func() bool { return len(r.delivered()) == 2 })
	stop()
	if n := sqlitedb.StatsOf(q.db).DurableCommits - before; n != 0 {
		t.Errorf("delivery made %d durable commits; want none (they answer nobody)", n)
	}
}
