package outgoing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"

	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// env is one migrated database; every handle it opens stands in for a
// separate process.
type env struct {
	kind store.Engine
	opts store.Options
}

// eachStore runs f against a fresh SQLite file and a fresh PostgreSQL
// database, in parallel.
func eachStore(t *testing.T, f func(t *testing.T, e *env)) {
	t.Helper()
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			f(t, newEnv(t, kind))
		})
	}
}

func newEnv(t testing.TB, kind store.Engine) *env {
	t.Helper()
	e := &env{kind: kind, opts: testkit.StoreOptions(t, kind)}
	s := e.open(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return e
}

func (e *env) open(t testing.TB) *store.Store {
	t.Helper()
	return testkit.OpenStore(t, e.opts)
}

// queue opens a new database handle (a new "process") and a queue on it,
// with test-friendly defaults: fast polling and near-instant backoff.
func (e *env) queue(t testing.TB, opts Options) *Queue {
	t.Helper()
	s := e.open(t)
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Millisecond
	}
	if opts.Backoff.Base == 0 {
		opts.Backoff.Base, opts.Backoff.Max = time.Millisecond, 5*time.Millisecond
	}
	if opts.ShutdownGrace == 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	return New(s.DB(), s.Engine(), opts)
}

// run starts q's dispatcher; the returned stop cancels it and waits for
// Run to return. Cleanup stops it too.
func run(t testing.TB, q *Queue, s Sender, g Gate) (stop func()) {
	t.Helper()
	return testkit.Go(t, func(ctx context.Context) error { return q.Run(ctx, s, g) })
}

// waitState waits until message id is in state.
func waitState(t testing.TB, q *Queue, id int64, state State) Message {
	t.Helper()
	var m Message
	testkit.WaitFor(t, fmt.Sprintf("message %d to be %s", id, state), func() bool {
		var err error
		m, err = q.Get(context.Background(), id)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		return m.State == state
	})
	return m
}

// fakeClock is testkit's clock with drive, for rate and gap tests.
type fakeClock struct{ *testkit.Clock }

func newFakeClock() *fakeClock {
	return &fakeClock{testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))}
}

// drive advances the clock by step on every real millisecond until the
// test ends, simulating time passing for rate and gap tests.
func (c *fakeClock) drive(t testing.TB, step time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.Advance(step)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// send is one call of the recorder.
type send struct {
	ID      int64
	WAID    string
	To      string
	Text    string
	Attempt int
	Owner   string
	At      time.Time
	Err     error
}

// failingUntilHealed is a recorder whose sends fail with err until heal
// is called, and then succeed.
func failingUntilHealed(err error) (r *recorder, heal func()) {
	var healed atomic.Bool
	return &recorder{fail: func(context.Context, Message, int) error {
		if healed.Load() {
			return nil
		}
		return err
	}}, func() { healed.Store(true) }
}

// recorder is a Sender that records every call; fail decides a call's
// outcome (nil fail: success) and may block.
type recorder struct {
	clock func() time.Time
	gate  Gate // when set, a call while it is closed is a violation
	fail  func(ctx context.Context, m Message, call int) error

	mu         sync.Mutex
	calls      []send
	perMsg     map[int64]int
	violations []string
}

func (r *recorder) Send(ctx context.Context, m Message) error {
	r.mu.Lock()
	if r.perMsg == nil {
		r.perMsg = make(map[int64]int)
	}
	r.perMsg[m.ID]++
	call := r.perMsg[m.ID]
	if r.gate != nil && !r.gate.Open() {
		r.violations = append(r.violations, fmt.Sprintf("message %d sent while the gate was closed", m.ID))
	}
	at := time.Now()
	if r.clock != nil {
		at = r.clock()
	}
	r.mu.Unlock()
	var err error
	if r.fail != nil {
		err = r.fail(ctx, m, call)
	}
	r.mu.Lock()
	r.calls = append(r.calls, send{ID: m.ID, WAID: m.WAID, To: m.To, Text: m.Text, Attempt: m.Attempts, Owner: m.LeaseOwner, At: at, Err: err})
	r.mu.Unlock()
	return err
}

// delivered returns the successful calls in order.
func (r *recorder) delivered() []send {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []send
	for _, c := range r.calls {
		if c.Err == nil {
			out = append(out, c)
		}
	}
	return out
}

func (r *recorder) all() []send {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]send(nil), r.calls...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func (r *recorder) checkViolations(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range r.violations {
		t.Error(v)
	}
}

func mustEnqueue(t testing.TB, q *Queue, to, text string) Message {
	t.Helper()
	m, created, err := q.Enqueue(context.Background(), Request{To: to, Text: text})
	if err != nil || !created {
		t.Fatalf("Enqueue(%s, %q) = %v, %v", to, text, created, err)
	}
	return m
}

func chatJID(i int) string { return fmt.Sprintf("49151000%05d@s.whatsapp.net", i) }

func jidOf(t testing.TB, s string) types.JID {
	t.Helper()
	j, err := types.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func typesID(s string) types.MessageID { return types.MessageID(s) }
