package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

const secret = "s3cret"

func openStore(t testing.TB, kind store.Engine) *store.Store {
	t.Helper()
	return testkit.Store(t, kind)
}

// hit is one request the endpoint received.
type hit struct {
	header http.Header
	body   []byte
}

// endpoint answers with status(n) for the n-th request (from 1).
type endpoint struct {
	mu     sync.Mutex
	hits   []hit
	status func(n int) int
}

func newEndpoint(t testing.TB, status func(n int) int) (*endpoint, *httptest.Server) {
	e := &endpoint{status: status}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.hits = append(e.hits, hit{r.Header.Clone(), body})
		n, status := len(e.hits), e.status
		e.mu.Unlock()
		w.WriteHeader(status(n))
	}))
	t.Cleanup(srv.Close)
	return e, srv
}

func (e *endpoint) all() []hit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]hit(nil), e.hits...)
}

func newClient(t testing.TB, st *store.Store, url string, tune func(*Options)) *Client {
	t.Helper()
	opts := Options{
		URL: url, Secret: secret, Session: "s", PollInterval: 10 * time.Millisecond,
		Backoff: backoff.Policy{Base: time.Millisecond, Max: 5 * time.Millisecond},
	}
	if tune != nil {
		tune(&opts)
	}
	c, err := New(st.DB(), st.Engine(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func run(t testing.TB, c *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func waitState(t testing.TB, c *Client, id string, want State) Event {
	t.Helper()
	var e Event
	eventually(t, func(ctx context.Context) (bool, string) {
		var err error
		if e, _, err = c.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
		return e.State == want, fmt.Sprintf("event %s is %s, want %s", id, e.State, want)
	})
	return e
}

// eventually polls cond until it holds, failing the test with cond's
// description of what it saw after 20 s.
func eventually(t testing.TB, cond func(ctx context.Context) (ok bool, saw string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, saw := cond(ctx)
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal(saw)
		case <-tick.C:
		}
	}
}

// The endpoint fails three times, then accepts: four attempts, each with
// the same event ID and body and a valid signature.
func TestRetriesUntilDelivered(t *testing.T) {
	for _, kind := range []store.Engine{store.SQLite, store.Postgres} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			st := openStore(t, kind)
			ep, srv := newEndpoint(t, func(n int) int {
				if n <= 3 {
					return http.StatusInternalServerError
				}
				return http.StatusNoContent
			})
			c := newClient(t, st, srv.URL, nil)
			id, err := c.Enqueue(context.Background(), KindMessageReceived, map[string]string{"chat": "x@s.whatsapp.net", "text": "héllo"})
			if err != nil {
				t.Fatal(err)
			}
			run(t, c)
			e := waitState(t, c, id, Delivered)
			if e.Attempts != 4 || e.DeliveredAt.IsZero() {
				t.Errorf("event %+v, want 4 attempts and a delivery time", e)
			}
			hits := ep.all()
			if len(hits) != 4 {
				t.Fatalf("endpoint saw %d requests, want 4", len(hits))
			}
			for i, h := range hits {
				if got := h.header.Get("X-Blacksky-Event-Id"); got != id {
					t.Errorf("attempt %d: event ID %q, want %q", i+1, got, id)
				}
				if !Verify(secret, h.body, h.header.Get("X-Blacksky-Signature")) {
					t.Errorf("attempt %d: bad signature %q", i+1, h.header.Get("X-Blacksky-Signature"))
				}
				if string(h.body) != string(hits[0].body) {
					t.Errorf("attempt %d: body changed", i+1)
				}
				if got := h.header.Get("X-Blacksky-Attempt"); got != strconv.Itoa(i+1) {
					t.Errorf("attempt header %q, want %d", got, i+1)
				}
				if ts, err := strconv.ParseInt(h.header.Get("X-Blacksky-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
					t.Errorf("timestamp header %q", h.header.Get("X-Blacksky-Timestamp"))
				}
				if h.header.Get("Content-Type") != "application/json" || h.header.Get("X-Blacksky-Event") != KindMessageReceived {
					t.Errorf("headers %v", h.header)
				}
			}
			var env struct {
				ID, Type, Session string
				CreatedAt         time.Time `json:"created_at"`
				Data              map[string]string
			}
			if err := json.Unmarshal(hits[0].body, &env); err != nil {
				t.Fatal(err)
			}
			if env.ID != id || env.Type != KindMessageReceived || env.Session != "s" || env.Data["text"] != "héllo" || env.CreatedAt.IsZero() {
				t.Errorf("body %s", hits[0].body)
			}
		})
	}
}

// An endpoint that never accepts gets MaxAttempts requests, then the event
// is dead; RetryDead brings it back.
func TestDeadAfterMaxAttempts(t *testing.T) {
	st := openStore(t, store.SQLite)
	ep, srv := newEndpoint(t, func(int) int { return http.StatusBadGateway })
	c := newClient(t, st, srv.URL, func(o *Options) { o.MaxAttempts = 3 })
	ctx := context.Background()
	id, err := c.Enqueue(ctx, "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	e := waitState(t, c, id, Dead)
	if e.Attempts != 3 || !strings.Contains(e.LastError, "HTTP 502") {
		t.Errorf("dead event %+v", e)
	}
	if n := len(ep.all()); n != 3 {
		t.Errorf("endpoint saw %d requests, want 3", n)
	}
	d, err := c.Depths(ctx)
	if err != nil || d[Dead] != 1 || d[Pending] != 0 {
		t.Errorf("depths %v %v", d, err)
	}
	ep.mu.Lock()
	ep.status = func(int) int { return http.StatusOK }
	ep.mu.Unlock()
	if n, err := c.RetryDead(ctx); err != nil || n != 1 {
		t.Fatalf("RetryDead = %d, %v", n, err)
	}
	waitState(t, c, id, Delivered)
}

// Timeouts and redirects to another host count as failures; a redirect on
// the same host is followed; a huge response is read only in part.
func TestFailuresAndRedirects(t *testing.T) {
	st := openStore(t, store.SQLite)
	ctx := context.Background()

	other, otherSrv := newEndpoint(t, func(int) int { return http.StatusOK })
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/x", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/here", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusPermanentRedirect)
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 1024 && r.Context().Err() == nil; i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(release)

	tests := []struct {
		path    string
		state   State
		errPart string
	}{
		{"/slow", Dead, "deadline exceeded"},
		{"/away", Dead, "redirect"},
		{"/here", Delivered, ""},
		{"/huge", Dead, "HTTP 418"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			c := newClient(t, st, srv.URL+tt.path, func(o *Options) {
				o.Session, o.MaxAttempts, o.Timeout, o.MaxResponseBytes = tt.path, 2, 100*time.Millisecond, 1024
			})
			id, err := c.Enqueue(ctx, "test", tt.path)
			if err != nil {
				t.Fatal(err)
			}
			run(t, c)
			e := waitState(t, c, id, tt.state)
			if !strings.Contains(e.LastError, tt.errPart) {
				t.Errorf("last error %q, want it to contain %q", e.LastError, tt.errPart)
			}
		})
	}
	if n := len(other.all()); n != 0 {
		t.Errorf("the other host received %d requests", n)
	}
}

func TestEnqueue(t *testing.T) {
	st := openStore(t, store.SQLite)
	c := newClient(t, st, "https://example.invalid/hook", nil)
	ctx := context.Background()
	for range 2 {
		if err := c.EnqueueID(ctx, st.DB(), "same", "k", 1); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := c.Depths(ctx); d[Pending] != 1 {
		t.Errorf("the same ID twice stored %d events", d[Pending])
	}
	for _, bad := range []struct{ id, kind string }{{"", "k"}, {"x", ""}, {strings.Repeat("x", MaxEventIDBytes+1), "k"}} {
		if err := c.EnqueueID(ctx, st.DB(), bad.id, bad.kind, 1); !errors.Is(err, ErrInvalid) {
			t.Errorf("EnqueueID(%q, %q) = %v, want ErrInvalid", bad.id, bad.kind, err)
		}
	}
	if err := c.EnqueueID(ctx, st.DB(), "ch", "k", make(chan int)); !errors.Is(err, ErrInvalid) {
		t.Errorf("unmarshallable payload: %v", err)
	}
	for _, u := range []string{"", "ftp://x/y", "/relative", "http://"} {
		if _, err := New(st.DB(), st.Engine(), Options{URL: u}); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%q) = %v, want ErrInvalid", u, err)
		}
	}
}

func TestSignature(t *testing.T) {
	// echo -n '{"a":1}' | openssl dgst -sha256 -hmac s3cret
	body := []byte(`{"a":1}`)
	sig := Signature(secret, body)
	if sig != "sha256=5910e62016ef5034272c926c27071992a465c2335cecf41851bda071577f4f6d" {
		t.Fatalf("signature %q", sig)
	}
	if !Verify(secret, body, sig) || Verify("other", body, sig) || Verify(secret, []byte(`{"a":2}`), sig) {
		t.Error("Verify accepts a wrong signature or refuses the right one")
	}
}

// TestSecretInURLIsNeverShown: hooks of Slack, Discord and n8n carry their
// secret in the URL; a failed delivery names the host only, in last_error
// and in the log (issue 13, case 10).
func TestSecretInURLIsNeverShown(t *testing.T) {
	st := openStore(t, store.SQLite)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every attempt fails to connect
	const token = "T0000/B0000/XXXXsecretXXXX"
	var logs bytes.Buffer
	var mu sync.Mutex
	c := newClient(t, st, "http://"+addr+"/services/"+token+"?sig=qsecret", func(o *Options) {
		o.MaxAttempts = 2
		o.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	})
	id, err := c.Enqueue(context.Background(), "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	e := waitState(t, c, id, Dead)
	// The dead event's line is written after its row: wait for it.
	var logged string
	testkit.WaitFor(t, "the dead event's log line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		logged = logs.String()
		return strings.Contains(logged, "event is dead")
	})
	for _, secret := range []string{"XXXXsecretXXXX", "qsecret"} {
		if strings.Contains(e.LastError, secret) || strings.Contains(logged, secret) {
			t.Errorf("the URL's secret %q is shown: last_error %q, log:\n%s", secret, e.LastError, logged)
		}
	}
	if !strings.Contains(e.LastError, addr) {
		t.Errorf("last_error %q does not name the host %s", e.LastError, addr)
	}
	// The dead event's line says where to read what to do.
	if !strings.Contains(logged, "help="+troubleshoot.Webhook.URL()) {
		t.Errorf("the dead event's log line carries no help link:\n%s", logged)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestMaskURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://hooks.slack.com/services/T/B/secret": "https://hooks.slack.com/(rest hidden)",
		"https://example.org":                         "https://example.org",
		"https://example.org/":                        "https://example.org",
		"https://n8n.example.org/webhook?token=abc":   "https://n8n.example.org/(rest hidden)",
		"https://user:pw@example.org":                 "https://example.org/(rest hidden)",
		"not a url":                                   "(URL hidden)",
	} {
		if got := MaskURL(in); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// Two processes' dispatchers on one database (the old and the new dyno of a
// deploy) post each event once: each event is claimed under a lease.
func TestTwoDispatchersPostEachEventOnce(t *testing.T) {
	for _, kind := range testkit.Engines {
		t.Run(string(kind), func(t *testing.T) {
			st := openStore(t, kind)
			ep, srv := newEndpoint(t, func(int) int { return http.StatusOK })
			a := newClient(t, st, srv.URL, nil)
			b := newClient(t, st, srv.URL, nil)
			const n = 60
			ids := make([]string, n)
			for i := range ids {
				id, err := a.Enqueue(context.Background(), "test", i)
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = id
			}
			run(t, a)
			run(t, b)
			for _, id := range ids {
				waitState(t, a, id, Delivered)
			}
			posts := map[string]int{}
			for _, h := range ep.all() {
				posts[h.header.Get("X-Blacksky-Event-Id")]++
			}
			for _, id := range ids {
				if posts[id] != 1 {
					t.Errorf("event %s posted %d times, want once", id, posts[id])
				}
			}
		})
	}
}

// An event whose dispatcher died mid-post (its process killed) is posted
// again, under the same ID, once its lease has ended; until then no other
// dispatcher takes it.
func TestEventOfADeadDispatcherIsPostedAfterItsLease(t *testing.T) {
	st := openStore(t, store.SQLite)
	ep, srv := newEndpoint(t, func(int) int { return http.StatusOK })
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	dead := newClient(t, st, srv.URL, func(o *Options) { o.Now = clock })
	id, err := dead.Enqueue(context.Background(), "test", 1)
	if err != nil {
		t.Fatal(err)
	}
	// The dead dispatcher claimed the event and never came back.
	if claimed, err := dead.jobs.Claim(context.Background(), 1, dead.owner, dead.lease()); err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	// The next dispatcher's rounds, one at a time (Run's loop without its
	// timers): under the lease it posts nothing and waits for its end.
	next := newClient(t, st, srv.URL, func(o *Options) { o.Now = clock })
	ctx := context.Background()
	wait, err := next.deliverDue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := next.Get(ctx, id); got.State != Pending || len(ep.all()) != 0 || wait > dead.lease() {
		t.Fatalf("under the dead dispatcher's lease: %s, %d posts, next look in %s", got.State, len(ep.all()), wait)
	}
	mu.Lock()
	now = now.Add(dead.lease() + time.Second)
	mu.Unlock()
	if _, err := next.deliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	e := waitState(t, next, id, Delivered)
	if h := ep.all(); len(h) != 1 || h[0].header.Get("X-Blacksky-Event-Id") != id || e.Attempts != 2 {
		t.Fatalf("posts %d, attempts %d; want one post of %s, its second attempt", len(h), e.Attempts, id)
	}
}
