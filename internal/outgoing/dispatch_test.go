package outgoing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

var errFlaky = errors.New("server hiccup")

func texts(sends []send) string {
	var b []string
	for _, s := range sends {
		b = append(b, s.Text)
	}
	return strings.Join(b, " ")
}

// A message that fails once is retried before anything after it in its
// chat: the recipient sees A B C, never B A or A B A.
func TestFIFOPerChatAcrossRetry(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		a := mustEnqueue(t, q, chatJID(1), "A")
		mustEnqueue(t, q, chatJID(1), "B")
		c := mustEnqueue(t, q, chatJID(1), "C")
		sender := &recorder{fail: func(_ context.Context, m Message, call int) error {
			if m.ID == a.ID && call == 1 {
				return errFlaky
			}
			return nil
		}}
		run(t, q, sender, NewSwitchGate(true))
		waitState(t, q, c.ID, Sent)
		if got := texts(sender.delivered()); got != "A B C" {
			t.Fatalf("recipient saw %q; want \"A B C\"", got)
		}
		if got := texts(sender.all()); got != "A A B C" {
			t.Fatalf("attempts were %q; want \"A A B C\"", got)
		}
	})
}

// Every attempt of a message carries the WhatsApp ID it got when enqueued.
func TestSameWAIDOnEveryAttempt(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		m := mustEnqueue(t, q, chatJID(1), "x")
		sender := &recorder{fail: func(_ context.Context, _ Message, call int) error {
			if call < 3 {
				return errFlaky
			}
			return nil
		}}
		run(t, q, sender, NewSwitchGate(true))
		sent := waitState(t, q, m.ID, Sent)
		calls := sender.all()
		if len(calls) != 3 || sent.Attempts != 3 || sent.LastError != "" {
			t.Fatalf("calls = %d, message = %+v; want 3 attempts", len(calls), sent)
		}
		for i, c := range calls {
			if c.WAID != m.WAID || c.Attempt != i+1 {
				t.Fatalf("attempt %d used WAID %s (attempt number %d); want %s", i+1, c.WAID, c.Attempt, m.WAID)
			}
		}
	})
}

// A chat whose send hangs does not hold up other chats.
func TestChatsDoNotBlockEachOther(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{Workers: 2})
		x1 := mustEnqueue(t, q, chatJID(1), "x1")
		x2 := mustEnqueue(t, q, chatJID(1), "x2")
		mustEnqueue(t, q, chatJID(2), "y1")
		y2 := mustEnqueue(t, q, chatJID(2), "y2")
		z1 := mustEnqueue(t, q, chatJID(3), "z1")
		release := make(chan struct{})
		sender := &recorder{fail: func(ctx context.Context, m Message, _ int) error {
			if m.To == chatJID(1) {
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}}
		run(t, q, sender, NewSwitchGate(true))
		waitState(t, q, y2.ID, Sent)
		waitState(t, q, z1.ID, Sent)
		if m, _ := q.Get(context.Background(), x1.ID); m.State != Sending {
			t.Fatalf("blocked message is %s; want sending", m.State)
		}
		if m, _ := q.Get(context.Background(), x2.ID); m.State != Pending {
			t.Fatalf("message behind the blocked one is %s; want pending", m.State)
		}
		close(release)
		waitState(t, q, x2.ID, Sent)
		var order []string
		for _, s := range sender.delivered() {
			if s.To == chatJID(1) || s.To == chatJID(2) {
				order = append(order, s.Text)
			}
		}
		if got := strings.Join(order, " "); got != "y1 y2 x1 x2" {
			t.Fatalf("delivery order %q; want y1 y2 x1 x2", got)
		}
	})
}

// While the gate is closed nothing is attempted and nothing fails; when it
// opens the backlog drains at once (no poll: the interval is an hour).
func TestGateClosedThenOpen(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{PollInterval: time.Hour})
		gate := NewSwitchGate(false)
		sender := &recorder{gate: gate}
		var ids []int64
		for i := range 5 {
			ids = append(ids, mustEnqueue(t, q, chatJID(i%2), fmt.Sprint(i)).ID)
		}
		run(t, q, sender, gate)
		testkit.WaitFor(t, "the dispatcher to wait on the closed gate", func() bool { return gate.Waiting() > 0 })
		ids = append(ids, mustEnqueue(t, q, chatJID(3), "while closed").ID)
		if n := sender.count(); n != 0 {
			t.Fatalf("%d sends while the gate was closed", n)
		}
		for _, id := range ids {
			if m, _ := q.Get(context.Background(), id); m.State != Pending || m.Attempts != 0 {
				t.Fatalf("message %d is %s after %d attempts while the gate is closed", id, m.State, m.Attempts)
			}
		}
		gate.Set(true)
		for _, id := range ids {
			waitState(t, q, id, Sent)
		}
		sender.checkViolations(t)
		// Closing again pauses, opening resumes.
		gate.Set(false)
		late := mustEnqueue(t, q, chatJID(4), "late") // wakes the dispatcher, which finds the gate closed
		testkit.WaitFor(t, "the dispatcher to wait on the gate again", func() bool { return gate.Waiting() > 0 })
		// A round that checked the gate just before it closed may claim the
		// message; the worker's own check then hands it back unsent.
		testkit.WaitFor(t, "the late message to be pending", func() bool {
			m, _ := q.Get(context.Background(), late.ID)
			return m.State == Pending
		})
		if m, _ := q.Get(context.Background(), late.ID); m.Attempts != 0 {
			t.Fatalf("message enqueued while closed cost %d attempts", m.Attempts)
		}
		gate.Set(true)
		waitState(t, q, late.ID, Sent)
		sender.checkViolations(t)
	})
}

// A permanent failure goes to dead at once, with the reason, and does not
// hold up the chat.
func TestPermanentFailureIsDeadImmediately(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		bad := mustEnqueue(t, q, chatJID(1), "bad")
		next := mustEnqueue(t, q, chatJID(1), "next")
		sender := &recorder{fail: func(_ context.Context, m Message, _ int) error {
			if m.ID == bad.ID {
				return Permanent(fmt.Errorf("recipient: %w", ErrNotOnWhatsApp))
			}
			return nil
		}}
		run(t, q, sender, NewSwitchGate(true))
		dead := waitState(t, q, bad.ID, Dead)
		if dead.Attempts != 1 || !strings.Contains(dead.LastError, "not on WhatsApp") {
			t.Fatalf("dead message = %+v", dead)
		}
		waitState(t, q, next.ID, Sent)
		if n := len(sender.all()); n != 2 {
			t.Fatalf("%d sends; want 2 (no retry of a permanent failure)", n)
		}
	})
}

func TestMaxAttemptsThenDead(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{MaxAttempts: 3})
		m := mustEnqueue(t, q, chatJID(1), "doomed")
		sender := &recorder{fail: func(context.Context, Message, int) error { return errFlaky }}
		run(t, q, sender, NewSwitchGate(true))
		dead := waitState(t, q, m.ID, Dead)
		if dead.Attempts != 3 || !strings.Contains(dead.LastError, "3 attempts") || !strings.Contains(dead.LastError, errFlaky.Error()) {
			t.Fatalf("dead message = %+v", dead)
		}
		if n := len(sender.all()); n != 3 {
			t.Fatalf("%d sends; want 3", n)
		}
	})
}

// An expired message goes to dead unsent; Settled sees it and the sent one
// once each, in their new states, inside the transaction of the change.
func TestTTLThenDead(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		clock := newFakeClock()
		var mu sync.Mutex
		settled := map[int64][]Message{}
		q := e.queue(t, Options{Now: clock.Now, TTL: time.Hour, Settled: func(_ context.Context, tx *sql.Tx, msgs []Message) error {
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				settled[m.ID] = append(settled[m.ID], m)
			}
			if tx == nil {
				return errors.New("no transaction")
			}
			return nil
		}})
		old := mustEnqueue(t, q, chatJID(1), "stale")
		clock.Advance(time.Hour + time.Second)
		fresh := mustEnqueue(t, q, chatJID(1), "fresh")
		sender := &recorder{}
		run(t, q, sender, NewSwitchGate(true))
		dead := waitState(t, q, old.ID, Dead)
		if !strings.Contains(dead.LastError, "expired") {
			t.Fatalf("expired message = %+v", dead)
		}
		sent := waitState(t, q, fresh.ID, Sent)
		if got := texts(sender.all()); got != "fresh" {
			t.Fatalf("sent %q; want only the fresh message", got)
		}
		mu.Lock()
		defer mu.Unlock()
		if s := settled[old.ID]; len(s) != 1 || s[0].State != Dead || s[0].LastError != dead.LastError || !s[0].UpdatedAt.Equal(dead.UpdatedAt) {
			t.Errorf("Settled got the expired message as %+v; want it once as stored: %+v", s, dead)
		}
		if s := settled[fresh.ID]; len(s) != 1 || s[0].State != Sent || !s[0].SentAt.Equal(sent.SentAt) || s[0].WAID != sent.WAID {
			t.Errorf("Settled got the sent message as %+v; want it once as stored: %+v", s, sent)
		}
	})
}

// A backlog larger than one expiry transaction expires whole, each message once.
func TestExpireInBatches(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clock := newFakeClock()
		var settled atomic.Int64
		q := e.queue(t, Options{Now: clock.Now, TTL: time.Hour, Settled: func(_ context.Context, _ *sql.Tx, msgs []Message) error {
			settled.Add(int64(len(msgs)))
			return nil
		}})
		const n = 2*expireBatch + 1
		var wg sync.WaitGroup
		for c := range 8 {
			wg.Go(func() {
				for i := c; i < n; i += 8 {
					mustEnqueue(t, q, chatJID(i%50), fmt.Sprint(i))
				}
			})
		}
		wg.Wait()
		clock.Advance(time.Hour + time.Second)
		if err := q.expire(ctx); err != nil {
			t.Fatal(err)
		}
		d, err := q.Depths(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d[Dead] != n || d[Pending] != 0 || settled.Load() != n {
			t.Fatalf("after expiry: depths %v, Settled got %d; want all %d dead, each reported once", d, settled.Load(), n)
		}
	})
}

// A message claimed by a process that died is sent by another once the
// lease runs out, and not before; the dead process cannot record an
// outcome afterwards.
func TestLeaseExpiryRescue(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clock := newFakeClock()
		dying := e.queue(t, Options{Now: clock.Now, Owner: "dying", Lease: time.Minute})
		rescuer := e.queue(t, Options{Now: clock.Now, Owner: "rescuer", Lease: time.Minute})
		m := mustEnqueue(t, dying, chatJID(1), "orphan")
		behind := mustEnqueue(t, dying, chatJID(1), "behind")
		claimed, err := dying.claim(ctx, 10)
		if err != nil || len(claimed) != 1 || claimed[0].ID != m.ID || claimed[0].LeaseOwner != "dying" {
			t.Fatalf("claim = %+v, %v", claimed, err)
		}
		clock.Advance(59 * time.Second)
		if got, err := rescuer.claim(ctx, 10); err != nil || len(got) != 0 {
			t.Fatalf("claim under a live lease = %+v, %v; want nothing", got, err)
		}
		clock.Advance(time.Second)
		got, err := rescuer.claim(ctx, 10)
		if err != nil || len(got) != 1 || got[0].ID != m.ID || got[0].Attempts != 2 || got[0].WAID != m.WAID || got[0].LeaseOwner != "rescuer" {
			t.Fatalf("claim after the lease = %+v, %v", got, err)
		}
		if ok, err := dying.markSent(ctx, claimed[0]); err != nil || ok {
			t.Fatalf("the dead owner's late markSent = %v, %v; want refused", ok, err)
		}
		if ok, err := rescuer.handBack(ctx, got[0]); err != nil || !ok {
			t.Fatalf("handBack = %v, %v", ok, err)
		}
		sender := &recorder{}
		run(t, rescuer, sender, NewSwitchGate(true))
		waitState(t, rescuer, behind.ID, Sent)
		if got := texts(sender.all()); got != "orphan behind" {
			t.Fatalf("sent %q", got)
		}
		if first, _ := rescuer.Get(ctx, m.ID); first.Attempts != 2 || first.WAID != m.WAID {
			t.Fatalf("rescued message = %+v", first)
		}
	})
}

// On shutdown a send under way may finish; one that outlasts the grace is
// cancelled and handed back, and claimed messages not yet sent are handed
// back without costing an attempt.
func TestShutdownHandsBack(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.queue(t, Options{Workers: 2, ShutdownGrace: 200 * time.Millisecond})
		quick := mustEnqueue(t, q, chatJID(1), "quick")
		stuck := mustEnqueue(t, q, chatJID(2), "stuck")
		waiting := mustEnqueue(t, q, chatJID(3), "waiting")
		started := make(chan int64, 2)
		finishQuick := make(chan struct{})
		sender := &recorder{fail: func(ctx context.Context, m Message, _ int) error {
			started <- m.ID
			if m.ID == quick.ID {
				<-finishQuick
				return nil
			}
			<-ctx.Done()
			return ctx.Err()
		}}
		stop := run(t, q, sender, NewSwitchGate(true))
		<-started
		<-started
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		// The shutdown has begun once the dispatcher stops claiming; let the
		// quick send finish inside the grace.
		close(finishQuick)
		<-stopped
		for _, c := range []struct {
			id    int64
			state State
		}{{quick.ID, Sent}, {stuck.ID, Pending}, {waiting.ID, Pending}} {
			m, err := q.Get(ctx, c.id)
			if err != nil || m.State != c.state {
				t.Fatalf("message %d = %s, %v; want %s", c.id, m.State, err, c.state)
			}
			if c.state == Pending && (m.Attempts != 0 || m.LeaseOwner != "" || !m.LeaseUntil.IsZero()) {
				t.Fatalf("handed-back message %+v still holds a lease or an attempt", m)
			}
		}

		// A message claimed but not yet sent when the shutdown comes.
		claimed, err := q.claim(ctx, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim = %v, %v", claimed, err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		d := &dispatcher{q: q, sender: sender, gate: NewSwitchGate(true), log: q.log}
		d.deliver(cancelled, ctx, claimed[0])
		if m, _ := q.Get(ctx, claimed[0].ID); m.State != Pending || m.Attempts != 0 || m.LeaseOwner != "" {
			t.Fatalf("claimed message after shutdown = %+v", m)
		}

		// The next run sends both, under their original IDs.
		healthy := &recorder{}
		run(t, q, healthy, NewSwitchGate(true))
		waitState(t, q, stuck.ID, Sent)
		waitState(t, q, waiting.ID, Sent)
		for _, s := range healthy.all() {
			if s.ID == stuck.ID && s.WAID != stuck.WAID {
				t.Fatalf("re-sent with WAID %s; want %s", s.WAID, stuck.WAID)
			}
		}
	})
}

// Two processes on one database: every message sent exactly once, in
// order per chat, never two sends at once in one chat.
func TestTwoProcessesExactlyOnceInOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const chats = 20
		messages := 1000
		if e.kind == store.SQLite && raceEnabled {
			// The pure-Go SQLite is many times slower under the race
			// detector; fewer messages keep the package's test time sane.
			messages = 300
		}
		ctx := context.Background()
		q1 := e.queue(t, Options{Owner: "p1", MaxPending: messages, PollInterval: 50 * time.Millisecond})
		q2 := e.queue(t, Options{Owner: "p2", MaxPending: messages, PollInterval: 50 * time.Millisecond})
		var mu sync.Mutex
		inChat := make(map[string]int64)
		var overlaps []string
		rng := rand.New(rand.NewPCG(1, 2))
		sender := &recorder{fail: func(_ context.Context, m Message, call int) error {
			mu.Lock()
			if other, busy := inChat[m.To]; busy {
				overlaps = append(overlaps, fmt.Sprintf("%d sent while %d in flight in %s", m.ID, other, m.To))
			}
			inChat[m.To] = m.ID
			flaky := call == 1 && rng.IntN(20) == 0
			mu.Unlock()
			defer func() {
				mu.Lock()
				delete(inChat, m.To)
				mu.Unlock()
			}()
			if flaky {
				return errFlaky
			}
			return nil
		}}
		// The gate opens halfway through the enqueues: a backlog to drain,
		// then enqueues racing the claims.
		gate := NewSwitchGate(false)
		run(t, q1, sender, gate)
		run(t, q2, sender, gate)
		// Four producers, each owning some chats, alternate between the two
		// processes; each chat's messages are enqueued in order.
		const producers = 4
		want := make(map[string][]int64)
		var wantMu sync.Mutex
		var producing sync.WaitGroup
		for p := range producers {
			producing.Go(func() {
				for i := p; i < messages; i += producers {
					if i >= messages/2 {
						gate.Set(true)
					}
					q := q1
					if (i/producers)%2 == 1 {
						q = q2
					}
					to := chatJID(i % chats)
					m, _, err := q.Enqueue(ctx, Request{To: to, Text: fmt.Sprint(i)})
					if err != nil {
						t.Errorf("Enqueue: %v", err)
						return
					}
					wantMu.Lock()
					want[to] = append(want[to], m.ID)
					wantMu.Unlock()
				}
			})
		}
		producing.Wait()
		testkit.WaitFor(t, "every message sent", func() bool { return len(sender.delivered()) >= messages })
		testkit.WaitFor(t, "every send recorded", func() bool {
			d, err := q1.Depths(ctx)
			return err == nil && d[Sent] == messages
		})
		got := make(map[string][]int64)
		seen := make(map[string]bool)
		byOwner := make(map[string]int)
		for _, s := range sender.delivered() {
			byOwner[s.Owner]++
			if seen[s.WAID] {
				t.Fatalf("message %d (%s) delivered twice", s.ID, s.WAID)
			}
			seen[s.WAID] = true
			got[s.To] = append(got[s.To], s.ID)
		}
		if byOwner["p1"] == 0 || byOwner["p2"] == 0 {
			t.Errorf("sends by process: %v; want both to take part", byOwner)
		}
		for to, ids := range want {
			if fmt.Sprint(got[to]) != fmt.Sprint(ids) {
				t.Fatalf("chat %s received %v; want %v", to, got[to], ids)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for _, o := range overlaps {
			t.Error(o)
		}
	})
}

// RatePerMinute holds in every 60 s window of the (simulated) clock.
func TestRatePerMinute(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const rate, messages = 3, 8
		clock := newFakeClock()
		q := e.queue(t, Options{Now: clock.Now, RatePerMinute: rate})
		var ids []int64
		for i := range messages {
			ids = append(ids, mustEnqueue(t, q, chatJID(i), fmt.Sprint(i)).ID)
		}
		sender := &recorder{clock: clock.Now}
		clock.drive(t, 50*time.Millisecond)
		run(t, q, sender, NewSwitchGate(true))
		for _, id := range ids {
			waitState(t, q, id, Sent)
		}
		sends := sender.delivered()
		for i := 0; i+rate < len(sends); i++ {
			if gap := sends[i+rate].At.Sub(sends[i].At); gap < time.Minute {
				t.Errorf("sends %d and %d are %v apart: more than %d in a minute", i, i+rate, gap, rate)
			}
		}
		if first := sends[rate-1].At.Sub(sends[0].At); first >= time.Minute {
			t.Errorf("the first %d sends took %v; the limit allows them at once", rate, first)
		}
	})
}

// ChatGap spaces messages to one chat without delaying other chats.
func TestChatGap(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		const gap = 10 * time.Second
		clock := newFakeClock()
		q := e.queue(t, Options{Now: clock.Now, ChatGap: gap})
		var last Message
		for i := range 3 {
			last = mustEnqueue(t, q, chatJID(1), fmt.Sprint("x", i))
		}
		other := mustEnqueue(t, q, chatJID(2), "y")
		sender := &recorder{clock: clock.Now}
		clock.drive(t, 50*time.Millisecond)
		run(t, q, sender, NewSwitchGate(true))
		waitState(t, q, last.ID, Sent)
		waitState(t, q, other.ID, Sent)
		var xs []send
		var y send
		for _, s := range sender.delivered() {
			if s.To == chatJID(1) {
				xs = append(xs, s)
			} else {
				y = s
			}
		}
		for i := 1; i < len(xs); i++ {
			if d := xs[i].At.Sub(xs[i-1].At); d < gap {
				t.Errorf("%s followed %s after %v; want at least %v", xs[i].Text, xs[i-1].Text, d, gap)
			}
		}
		if !y.At.Before(xs[1].At) {
			t.Errorf("the other chat waited for this chat's gap: y at %v, x1 at %v", y.At, xs[1].At)
		}
	})
}

// A lease left by a dead process does not count against the rate limit, or
// it would block its own rescue.
func TestRateLimitDoesNotBlockRescue(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		clock := newFakeClock()
		dying := e.queue(t, Options{Now: clock.Now, Owner: "dying", Lease: time.Minute})
		m := mustEnqueue(t, dying, chatJID(1), "orphan")
		if got, err := dying.claim(context.Background(), 1); err != nil || len(got) != 1 {
			t.Fatalf("claim = %v, %v", got, err)
		}
		clock.Advance(time.Minute)
		rescuer := e.queue(t, Options{Now: clock.Now, Owner: "rescuer", RatePerMinute: 1})
		run(t, rescuer, &recorder{}, NewSwitchGate(true))
		waitState(t, rescuer, m.ID, Sent)
	})
}

func TestRunTwiceRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		gate := NewSwitchGate(false)
		run(t, q, &recorder{}, gate)
		testkit.WaitFor(t, "the dispatcher to start", func() bool { return gate.Waiting() > 0 })
		if err := q.Run(context.Background(), &recorder{}, gate); !errors.Is(err, ErrRunning) {
			t.Fatalf("second Run = %v; want ErrRunning", err)
		}
	})
}

// The account lease's new holder takes back a dead holder's claims at once,
// without waiting out their lease, and they keep attempt count and ID.
func TestReclaimAllAfterTakingTheAccount(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		clock := newFakeClock()
		dying := e.queue(t, Options{Now: clock.Now, Owner: "dying", Lease: time.Hour})
		heir := e.queue(t, Options{Now: clock.Now, Owner: "heir", Lease: time.Hour})
		m := mustEnqueue(t, dying, chatJID(1), "orphan")
		if claimed, err := dying.claim(ctx, 10); err != nil || len(claimed) != 1 {
			t.Fatalf("claim = %+v, %v", claimed, err)
		}
		if n, err := heir.ReclaimAll(ctx); err != nil || n != 1 {
			t.Fatalf("ReclaimAll = %d, %v; want 1", n, err)
		}
		got, err := heir.claim(ctx, 10)
		if err != nil || len(got) != 1 || got[0].ID != m.ID || got[0].WAID != m.WAID || got[0].Attempts != 2 {
			t.Fatalf("claim after ReclaimAll = %+v, %v", got, err)
		}
	})
}
