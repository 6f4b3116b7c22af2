package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/sqlitedb"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

const (
	token   = "0123456789abcdef0123456789abcdef"
	account = "4915123456789:12@s.whatsapp.net"
	qrText  = "2@Abc123DefGhi456,Jkl789MnoPqr012,Stu345VwxYz678,1"
)

type fakeConn struct {
	status  supervisor.Status
	pairing supervisor.Pairing
	code    string
	codeErr error
	alerts  []supervisor.Alert

	mu     sync.Mutex
	phones []string // numbers RequestPairCode was called with
}

func (c *fakeConn) Status() supervisor.Status   { return c.status }
func (c *fakeConn) Pairing() supervisor.Pairing { return c.pairing }
func (c *fakeConn) Alerts() []supervisor.Alert  { return c.alerts }

func (c *fakeConn) RequestPairCode(ctx context.Context, phone string) (string, error) {
	c.mu.Lock()
	c.phones = append(c.phones, phone)
	c.mu.Unlock()
	if c.codeErr != nil {
		return "", c.codeErr
	}
	return c.code, nil
}

type fakeDB struct {
	err error

	mu    sync.Mutex
	pings int
}

func (d *fakeDB) Check(ctx context.Context) error {
	d.mu.Lock()
	d.pings++
	d.mu.Unlock()
	return d.err
}

type fixture struct {
	conn    *fakeConn
	db      *fakeDB
	metrics *metrics.Metrics
	started time.Time
	h       http.Handler
}

// newFixture serves a paired, connected bot with a waiting QR code; edit
// conn or db before sending requests.
func newFixture(t testing.TB, tok string) *fixture {
	t.Helper()
	f := &fixture{
		conn: &fakeConn{
			status:  supervisor.Status{State: supervisor.Connected, Since: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Account: account},
			pairing: supervisor.Pairing{QR: qrText},
			code:    "ABCD-EFGH",
		},
		db:      &fakeDB{},
		metrics: metrics.New(),
		started: time.Now().Add(-90 * time.Second),
	}
	f.h = httpapi.New(httpapi.Options{
		Conn:     f.conn,
		DB:       f.db,
		Database: "sqlite",
		Metrics:  f.metrics,
		Token:    tok,
		BotName:  "testbot",
		Session:  "default",
		Version:  "v1.2.3-test",
		Started:  f.started,
	})
	return f
}

type reqOpt func(*http.Request)

func fromAddr(addr string) reqOpt { return func(r *http.Request) { r.RemoteAddr = addr } }
func bearer(tok string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}
func header(k, v string) reqOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func host(h string) reqOpt      { return func(r *http.Request) { r.Host = h } }

var loopback = fromAddr("127.0.0.1:1234")

func (f *fixture) do(method, path, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	// As a script on this machine sends them: to 127.0.0.1, JSON whenever
	// the request may change something. Options override both.
	r.Host = "127.0.0.1:8080"
	if body != "" || (method != http.MethodGet && method != http.MethodHead) {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(r)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

// decode parses a JSON response into a map, failing unless it is JSON.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	ct, _, _ := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json; body %q", w.Header().Get("Content-Type"), w.Body.String())
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %q", err, w.Body.String())
	}
	return m
}

// wantError asserts the status and that the body is a JSON error with a reason.
func wantError(t *testing.T, w *httptest.ResponseRecorder, code int) string {
	t.Helper()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body %q", w.Code, code, w.Body.String())
	}
	m := decode(t, w)
	msg, _ := m["error"].(string)
	if msg == "" {
		t.Fatalf("error response without an \"error\" string: %q", w.Body.String())
	}
	return msg
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, "")
	// Liveness does not depend on WhatsApp or the database.
	f.conn.status = supervisor.Status{State: supervisor.Banned}
	f.db.err = errors.New("connection refused")
	w := f.do(http.MethodGet, "/healthz", "")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d, want 200", w.Code)
	}
	if m := decode(t, w); m["status"] != "ok" {
		t.Errorf("body %v", m)
	}
	if w := f.do(http.MethodHead, "/healthz", ""); w.Code != http.StatusOK {
		t.Errorf("HEAD /healthz: %d, want 200", w.Code)
	}
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		status     supervisor.Status
		dbErr      error
		wantCode   int
		wantReason string
	}{
		{"connected, database up", supervisor.Status{State: supervisor.Connected, Account: account}, nil, 200, ""},
		{"unpaired", supervisor.Status{State: supervisor.Unpaired}, nil, 503, "not paired"},
		{"logged out", supervisor.Status{State: supervisor.LoggedOut, Account: account}, nil, 503, "not paired"},
		{"first connect before pairing", supervisor.Status{State: supervisor.Connecting}, nil, 503, "not paired"},
		{"connecting", supervisor.Status{State: supervisor.Connecting, Account: account}, nil, 503, "connecting"},
		{"reconnecting", supervisor.Status{State: supervisor.Reconnecting, Account: account, Attempt: 2}, nil, 503, "connecting"},
		{"banned", supervisor.Status{State: supervisor.Banned, Account: account}, nil, 503, "banned"},
		{"database down", supervisor.Status{State: supervisor.Connected, Account: account},
			&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, 503, "database: unreachable or not answering"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "")
			f.conn.status = tt.status
			f.db.err = tt.dbErr
			w := f.do(http.MethodGet, "/readyz", "")
			if w.Code != tt.wantCode {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.wantCode, w.Body)
			}
			m := decode(t, w)
			reason, _ := m["reason"].(string)
			if reason != tt.wantReason {
				t.Errorf("reason %q, want %q", reason, tt.wantReason)
			}
			if m["ready"] != (tt.wantCode == 200) {
				t.Errorf("ready = %v with status %d", m["ready"], w.Code)
			}
			if m["state"] != string(tt.status.State) {
				t.Errorf("state = %v, want %s", m["state"], tt.status.State)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, "")
	next := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second)
	f.conn.status = supervisor.Status{
		State: supervisor.Reconnecting, Reason: "keep-alive timed out",
		Since: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Attempt: 3, NextAttempt: &next, Account: account,
	}
	w := f.do(http.MethodGet, "/status", "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	m := decode(t, w)
	for key, want := range map[string]any{
		"state":        "reconnecting",
		"reason":       "keep-alive timed out",
		"since":        "2025-01-02T03:04:05Z",
		"attempt":      3.0,
		"next_attempt": next.Format(time.RFC3339),
		"version":      "v1.2.3-test",
		"bot":          "testbot",
		"session":      "default",
		"database":     "sqlite",
	} {
		if m[key] != want {
			t.Errorf("%s = %#v, want %#v", key, m[key], want)
		}
	}
	if up, _ := m["uptime_seconds"].(float64); up < 90 || up > 3600 {
		t.Errorf("uptime_seconds = %v, want about 90", m["uptime_seconds"])
	}
	mem, _ := m["memory"].(map[string]any)
	if heap, _ := mem["heap_alloc_mb"].(float64); heap <= 0 {
		t.Errorf("memory.heap_alloc_mb = %v", mem["heap_alloc_mb"])
	}
	if g, _ := mem["goroutines"].(float64); g < 1 {
		t.Errorf("memory.goroutines = %v", mem["goroutines"])
	}

	// Attempt fields only appear while reconnecting.
	f.conn.status = supervisor.Status{State: supervisor.Connected, Account: account}
	m = decode(t, f.do(http.MethodGet, "/status", "", loopback))
	for _, key := range []string{"attempt", "next_attempt", "reason"} {
		if _, ok := m[key]; ok {
			t.Errorf("connected status has %s: %v", key, m[key])
		}
	}
	if m["state"] != "connected" {
		t.Errorf("state = %v", m["state"])
	}

	f.conn.alerts = []supervisor.Alert{{Time: time.Now(), Text: "This bot was logged out of WhatsApp"}}
	m = decode(t, f.do(http.MethodGet, "/status", "", loopback))
	alerts, _ := m["alerts"].([]any)
	if len(alerts) != 1 || alerts[0].(map[string]any)["text"] != "This bot was logged out of WhatsApp" {
		t.Errorf("alerts = %v", m["alerts"])
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, "")
	for _, st := range supervisor.AllStates {
		v := 0.0
		if st == supervisor.Connected {
			v = 1
		}
		f.metrics.ConnectionState.WithLabelValues(string(st)).Set(v)
	}
	w := f.do(http.MethodGet, "/metrics", "")
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus text", ct)
	}
	body := w.Body.String()
	for _, want := range []string{
		"# TYPE blacksky_connection_state gauge",
		`blacksky_connection_state{state="connected"} 1`,
		`blacksky_connection_state{state="banned"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// protected lists every endpoint behind the token, with a request that
// succeeds once admitted.
var protected = []struct{ method, path, body string }{
	{http.MethodGet, "/pair", ""},
	{http.MethodGet, "/pair/qr.png", ""},
	{http.MethodGet, "/api/v1/pair", ""},
	{http.MethodPost, "/api/v1/pair/code", `{"phone":"+49 151 2345 6789"}`},
}

func TestAuthWithToken(t *testing.T) {
	tests := []struct {
		name string
		opts []reqOpt
		want int
	}{
		{"no token", nil, 401},
		{"no token from loopback", []reqOpt{loopback}, 401},
		{"wrong bearer token", []reqOpt{bearer("wrong-token-0123456789abcdef")}, 401},
		{"token prefix", []reqOpt{bearer(token[:16])}, 401},
		{"token with extra", []reqOpt{bearer(token + "x")}, 401},
		{"empty bearer", []reqOpt{header("Authorization", "Bearer ")}, 401},
		{"token without scheme", []reqOpt{header("Authorization", token)}, 401},
		{"token as basic user name", []reqOpt{func(r *http.Request) { r.SetBasicAuth(token, "") }}, 401},
		{"wrong basic password", []reqOpt{func(r *http.Request) { r.SetBasicAuth("admin", "nope") }}, 401},
		{"token in query", []reqOpt{func(r *http.Request) { r.URL.RawQuery = "token=" + token }}, 401},
		{"bearer token", []reqOpt{bearer(token)}, 200},
		{"lower-case bearer", []reqOpt{header("Authorization", "bearer "+token)}, 200},
		{"basic auth password", []reqOpt{func(r *http.Request) { r.SetBasicAuth("admin", token) }}, 200},
		{"basic auth, empty user", []reqOpt{func(r *http.Request) { r.SetBasicAuth("", token) }}, 200},
	}
	for _, ep := range protected {
		for _, tt := range tests {
			t.Run(ep.path+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, token)
				w := f.do(ep.method, ep.path, ep.body, tt.opts...)
				if tt.want == 200 {
					if w.Code != 200 {
						t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.String())
					}
					return
				}
				wantError(t, w, tt.want)
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 without a Basic challenge: WWW-Authenticate %q", w.Header().Get("WWW-Authenticate"))
				}
				if n := len(f.conn.phones); n != 0 {
					t.Errorf("RequestPairCode called %d times without a valid token", n)
				}
			})
		}
	}
}

func TestAuthWithoutToken(t *testing.T) {
	tests := []struct {
		name string
		opts []reqOpt
		want int
	}{
		{"IPv4 loopback", []reqOpt{loopback}, 200},
		{"other 127/8 address", []reqOpt{fromAddr("127.8.9.10:5555")}, 200},
		{"IPv6 loopback", []reqOpt{fromAddr("[::1]:1234")}, 200},
		{"httptest default address", nil, 403},
		{"LAN address", []reqOpt{fromAddr("192.168.1.20:40000")}, 403},
		{"IPv4-mapped public address", []reqOpt{fromAddr("[::ffff:203.0.113.9]:1234")}, 403},
		{"X-Forwarded-For loopback", []reqOpt{fromAddr("203.0.113.9:1234"), header("X-Forwarded-For", "127.0.0.1")}, 403},
		{"X-Real-IP loopback", []reqOpt{fromAddr("203.0.113.9:1234"), header("X-Real-IP", "127.0.0.1")}, 403},
		{"Forwarded loopback", []reqOpt{fromAddr("203.0.113.9:1234"), header("Forwarded", "for=127.0.0.1")}, 403},
		{"any bearer token", []reqOpt{fromAddr("203.0.113.9:1234"), bearer("anything")}, 403},
		{"empty bearer", []reqOpt{fromAddr("203.0.113.9:1234"), header("Authorization", "Bearer ")}, 403},
		{"address without port", []reqOpt{fromAddr("127.0.0.1")}, 403},
		{"no address", []reqOpt{fromAddr("")}, 403},
	}
	for _, ep := range protected {
		for _, tt := range tests {
			t.Run(ep.path+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, "")
				w := f.do(ep.method, ep.path, ep.body, tt.opts...)
				if tt.want == 200 {
					if w.Code != 200 {
						t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.String())
					}
					return
				}
				msg := wantError(t, w, tt.want)
				if !strings.Contains(msg, "API_TOKEN") {
					t.Errorf("403 should tell the operator to set API_TOKEN: %q", msg)
				}
				if n := len(f.conn.phones); n != 0 {
					t.Errorf("RequestPairCode called %d times from a remote address", n)
				}
			})
		}
	}
}

// TestBrowserPagesCannotDriveTheAPI: a page the operator has open can make
// the browser send requests to the bot (issue 13, case 8): a form POST
// (text/plain, no CORS preflight), an <img> with cached basic-auth
// credentials, or, through DNS rebinding, any request to a name that
// resolves to 127.0.0.1. None gets through; scripts and a click on a link do.
func TestBrowserPagesCannotDriveTheAPI(t *testing.T) {
	post := `{"phone":"4915123456789"}`
	basic := func(r *http.Request) { r.SetBasicAuth("", token) }
	tests := []struct {
		name   string
		tok    string
		method string
		path   string
		body   string
		opts   []reqOpt
		want   int
	}{
		{"form POST without a token", "", http.MethodPost, "/api/v1/pair/code", post, []reqOpt{loopback, header("Content-Type", "text/plain")}, 415},
		{"POST without a content type", "", http.MethodPost, "/api/v1/pair/code", post, []reqOpt{loopback, header("Content-Type", "")}, 415},
		{"cross-site JSON POST", "", http.MethodPost, "/api/v1/pair/code", post, []reqOpt{loopback, header("Origin", "https://evil.example")}, 403},
		{"cross-site fetch, Sec-Fetch-Site", "", http.MethodGet, "/api/v1/pair", "", []reqOpt{loopback, header("Sec-Fetch-Site", "cross-site"), header("Sec-Fetch-Mode", "cors")}, 403},
		{"Origin null", "", http.MethodPost, "/api/v1/pair/code", post, []reqOpt{loopback, header("Origin", "null")}, 403},
		{"DNS rebinding: Host of another name", "", http.MethodGet, "/api/v1/pair", "", []reqOpt{loopback, host("evil.example")}, 403},
		{"DNS rebinding: QR image", "", http.MethodGet, "/pair/qr.png", "", []reqOpt{loopback, host("evil.example:8080")}, 403},
		{"basic-auth form POST with a token", token, http.MethodPost, "/api/v1/pair/code", post, []reqOpt{basic, header("Content-Type", "text/plain")}, 415},
		{"basic-auth cross-site POST with a token", token, http.MethodPost, "/api/v1/pair/code", post, []reqOpt{basic, header("Origin", "https://evil.example")}, 403},
		{"cross-site <img> with cached credentials", token, http.MethodGet, "/pair/qr.png", "", []reqOpt{basic, header("Sec-Fetch-Site", "cross-site"), header("Sec-Fetch-Mode", "no-cors")}, 403},

		{"script on this machine", "", http.MethodPost, "/api/v1/pair/code", post, []reqOpt{loopback}, 200},
		{"localhost by name", "", http.MethodGet, "/api/v1/pair", "", []reqOpt{loopback, host("localhost:8080")}, 200},
		{"IPv6 loopback Host", "", http.MethodGet, "/api/v1/pair", "", []reqOpt{fromAddr("[::1]:1234"), host("[::1]:8080")}, 200},
		{"same-origin page", "", http.MethodPost, "/api/v1/pair/code", post, []reqOpt{loopback, header("Origin", "http://127.0.0.1:8080"), header("Sec-Fetch-Site", "same-origin")}, 200},
		{"a link clicked on another site", token, http.MethodGet, "/pair", "", []reqOpt{basic, header("Sec-Fetch-Site", "cross-site"), header("Sec-Fetch-Mode", "navigate")}, 200},
		{"bearer-token script without a content type", token, http.MethodPost, "/api/v1/pair/code", post, []reqOpt{bearer(token), header("Content-Type", "")}, 200},
		{"any Host with a token", token, http.MethodGet, "/api/v1/pair", "", []reqOpt{bearer(token), host("bot.herokuapp.com")}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.tok)
			w := f.do(tt.method, tt.path, tt.body, tt.opts...)
			if tt.want == 200 {
				if w.Code != 200 {
					t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.String())
				}
				return
			}
			wantError(t, w, tt.want)
			if n := len(f.conn.phones); n != 0 {
				t.Errorf("the refused request asked for a pairing code (%d times)", n)
			}
		})
	}
}

// The health endpoints answer anyone, token or not, and say nothing about
// the deployment: no phone number, host, session or database address
// (issue 15). A database error's details (a path, a host, a user) stay out
// of /readyz's reason; its kind is named.
func TestHealthEndpointsAreOpenAndRevealNothing(t *testing.T) {
	secrets := []string{"4915123456789", "bot-host-7", "secret-session", "db.internal", "/srv/bot-data", "alice"}
	dbErrors := []struct {
		err  error
		want string
	}{
		{errors.New(`write to postgres: failed to connect to "user=alice database=bot": dial tcp db.internal:5432: connection refused`), "database: "},
		{fmt.Errorf("%w: /srv/bot-data/blacksky.db", sqlitedb.ErrFileGone), "deleted or replaced"},
		{fmt.Errorf("%w: 3 MiB free in /srv/bot-data, 32 MiB needed", store.ErrDiskFull), "disk"},
		{fmt.Errorf("%w: open /srv/bot-data/blacksky.db: database disk image is malformed", sqlitedb.ErrDamaged), "damaged"},
	}
	for _, tok := range []string{"", token} {
		for _, dbErr := range dbErrors {
			f := newFixture(t, tok)
			f.h = httpapi.New(httpapi.Options{Conn: f.conn, DB: f.db, Metrics: f.metrics, Token: tok, Session: "secret-session", BotName: "testbot"})
			f.conn.status = supervisor.Status{State: supervisor.Connected, Account: account, Holder: "bot-host-7/pid-42"}
			f.db.err = dbErr.err
			for _, path := range []string{"/healthz", "/readyz"} {
				w := f.do(http.MethodGet, path, "", fromAddr("203.0.113.9:1234"), host("bot.example.org"))
				if w.Code != http.StatusOK && !(path == "/readyz" && w.Code == http.StatusServiceUnavailable) {
					t.Errorf("GET %s from another machine (token %v): %d; want an answer", path, tok != "", w.Code)
				}
				for _, s := range secrets {
					if strings.Contains(w.Body.String(), s) {
						t.Errorf("GET %s reveals %q: %s", path, s, w.Body)
					}
				}
				if path == "/readyz" && !strings.Contains(w.Body.String(), dbErr.want) {
					t.Errorf("GET /readyz with database error %q: %s; want the reason to name %q", dbErr.err, w.Body, dbErr.want)
				}
			}
		}
	}
}

// With API_TOKEN set, /status and /metrics need it like the API (issue 15:
// they answered anyone, and /status names the account's number and the
// host); Prometheus scrapes with a bearer token.
func TestStatusAndMetricsNeedTheToken(t *testing.T) {
	tests := []struct {
		name string
		opts []reqOpt
		want int
	}{
		{"no token, another machine", []reqOpt{fromAddr("203.0.113.9:1234")}, 401},
		{"no token, this machine", []reqOpt{loopback}, 401},
		{"wrong token", []reqOpt{bearer("wrong-token-0123456789abcdef")}, 401},
		{"bearer token", []reqOpt{bearer(token), fromAddr("203.0.113.9:1234")}, 200},
		{"basic auth password", []reqOpt{func(r *http.Request) { r.SetBasicAuth("", token) }}, 200},
	}
	for _, path := range []string{"/status", "/metrics"} {
		for _, tt := range tests {
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, token)
				w := f.do(http.MethodGet, path, "", tt.opts...)
				if tt.want == 200 {
					if w.Code != 200 {
						t.Fatalf("status %d, want 200; body %q", w.Code, w.Body.String())
					}
					return
				}
				wantError(t, w, tt.want)
				if strings.Contains(w.Body.String(), "4915123456789") {
					t.Errorf("the refusal reveals the account: %s", w.Body)
				}
			})
		}
	}
}

// Without API_TOKEN, /status (it names the account's number and the host)
// answers this machine only, as the API does; another machine gets a 403
// that says how to see it. /metrics names neither and stays open to
// scrapers, as before.
func TestStatusWithoutTokenAnswersOnlyThisMachine(t *testing.T) {
	f := newFixture(t, "")
	f.conn.status.Holder = "bot-host-7/pid-42"
	w := f.do(http.MethodGet, "/status", "", loopback)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), account) {
		t.Fatalf("/status from this machine: %d %s; want 200 with the account", w.Code, w.Body)
	}
	for name, opts := range map[string][]reqOpt{
		"another machine":                   {fromAddr("203.0.113.9:1234")},
		"another machine claiming loopback": {fromAddr("203.0.113.9:1234"), header("X-Forwarded-For", "127.0.0.1")},
		"DNS rebinding page":                {loopback, host("evil.example:8080")},
	} {
		w := f.do(http.MethodGet, "/status", "", opts...)
		msg := wantError(t, w, http.StatusForbidden)
		if !strings.Contains(msg, "API_TOKEN") {
			t.Errorf("%s: the 403 does not say to set API_TOKEN: %q", name, msg)
		}
		for _, s := range []string{"4915123456789", "bot-host-7"} {
			if strings.Contains(w.Body.String(), s) {
				t.Errorf("%s: the 403 reveals %q: %s", name, s, w.Body)
			}
		}
	}
	if w := f.do(http.MethodGet, "/metrics", "", fromAddr("203.0.113.9:1234")); w.Code != http.StatusOK {
		t.Errorf("/metrics from another machine without API_TOKEN: %d; want 200 as before", w.Code)
	}
}

func TestPairQR(t *testing.T) {
	f := newFixture(t, "")
	w := f.do(http.MethodGet, "/pair/qr.png", "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d; body %q", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "image/png" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.HasPrefix(w.Body.Bytes(), []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("body is not a PNG: % x", w.Body.Bytes()[:min(8, w.Body.Len())])
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q: a stale QR code cannot be scanned", cc)
	}

	f.conn.pairing = supervisor.Pairing{Paired: true, Account: account}
	wantError(t, f.do(http.MethodGet, "/pair/qr.png", "", loopback), http.StatusNotFound)
}

func TestPairJSON(t *testing.T) {
	f := newFixture(t, "")
	f.conn.pairing = supervisor.Pairing{QR: qrText, Code: "ABCD-EFGH", CodePhone: "4915123456789"}
	m := decode(t, f.do(http.MethodGet, "/api/v1/pair", "", loopback))
	if m["qr"] != qrText || m["pair_code"] != "ABCD-EFGH" || m["paired"] != false {
		t.Errorf("unpaired: %v", m)
	}
	f.conn.pairing = supervisor.Pairing{Paired: true, Account: account}
	m = decode(t, f.do(http.MethodGet, "/api/v1/pair", "", loopback))
	if m["paired"] != true || m["account"] != account {
		t.Errorf("paired: %v", m)
	}
	if _, ok := m["qr"]; ok {
		t.Errorf("paired bot shows a QR code: %v", m)
	}
}

func TestPairCode(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		codeErr   error
		wantCode  int
		wantPhone string // the number passed to RequestPairCode, if it is called
	}{
		{"international number", `{"phone":"+49 151 2345 6789"}`, nil, 200, "4915123456789"},
		{"digits only", `{"phone":"15550100199"}`, nil, 200, "15550100199"},
		{"bad JSON", `{"phone":`, nil, 400, ""},
		{"not JSON", `phone=4915123456789`, nil, 400, ""},
		{"unknown field", `{"phone":"4915123456789","name":"bot"}`, nil, 400, ""},
		{"misspelled field", `{"phon":"4915123456789"}`, nil, 400, ""},
		{"phone as number", `{"phone":4915123456789}`, nil, 400, ""},
		{"missing phone", `{}`, nil, 400, ""},
		{"null", `null`, nil, 400, ""},
		{"array", `[{"phone":"4915123456789"}]`, nil, 400, ""},
		{"national number", `{"phone":"015123456789"}`, nil, 400, ""},
		{"too short", `{"phone":"12345"}`, nil, 400, ""},
		{"letters", `{"phone":"49151abc"}`, nil, 400, ""},
		{"WhatsApp JID", `{"phone":"4915123456789@s.whatsapp.net"}`, nil, 400, ""},
		{"empty body", ``, nil, 400, ""},
		{"two objects", `{"phone":"4915123456789"}{"phone":"15550100199"}`, nil, 400, ""},
		{"trailing garbage", `{"phone":"4915123456789"} x`, nil, 400, ""},
		{"trailing whitespace", "{\"phone\":\"4915123456789\"}\n\t ", nil, 200, "4915123456789"},
		{"oversized phone", `{"phone":"` + strings.Repeat("1", 70<<10) + `"}`, nil, 413, ""},
		{"oversized padding", `{"phone":"4915123456789"}` + strings.Repeat(" ", 70<<10), nil, 413, ""},
		{"just under the limit", `{"phone":"4915123456789"}` + strings.Repeat(" ", 60<<10), nil, 200, "4915123456789"},
		{"not pairing", `{"phone":"4915123456789"}`, supervisor.ErrNotPairing, 409, "4915123456789"},
		{"not pairing, wrapped", `{"phone":"4915123456789"}`, fmt.Errorf("request code: %w", supervisor.ErrNotPairing), 409, "4915123456789"},
		{"WhatsApp refuses", `{"phone":"4915123456789"}`, errors.New("server returned 429"), 502, "4915123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, "")
			f.conn.codeErr = tt.codeErr
			w := f.do(http.MethodPost, "/api/v1/pair/code", tt.body, loopback)
			if tt.wantCode == 200 {
				if w.Code != 200 {
					t.Fatalf("status %d; body %q", w.Code, w.Body.String())
				}
				m := decode(t, w)
				if m["pair_code"] != "ABCD-EFGH" || m["phone"] != tt.wantPhone {
					t.Errorf("body %v", m)
				}
			} else {
				wantError(t, w, tt.wantCode)
			}
			var want []string
			if tt.wantPhone != "" {
				want = []string{tt.wantPhone}
			}
			if fmt.Sprint(f.conn.phones) != fmt.Sprint(want) {
				t.Errorf("RequestPairCode called with %q, want %q", f.conn.phones, want)
			}
		})
	}
}

func TestWrongMethod(t *testing.T) {
	tests := []struct{ method, path, allow string }{
		{http.MethodPost, "/healthz", "GET"},
		{http.MethodPost, "/readyz", "GET"},
		{http.MethodDelete, "/status", "GET"},
		{http.MethodPut, "/metrics", "GET"},
		{http.MethodPost, "/pair", "GET"},
		{http.MethodDelete, "/pair/qr.png", "GET"},
		{http.MethodPost, "/api/v1/pair", "GET"},
		{http.MethodGet, "/api/v1/pair/code", "POST"},
		{http.MethodPut, "/api/v1/pair/code", "POST"},
	}
	for _, tt := range tests {
		f := newFixture(t, "")
		w := f.do(tt.method, tt.path, "", loopback)
		msg := wantError(t, w, http.StatusMethodNotAllowed)
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		if !strings.Contains(msg, tt.allow) {
			t.Errorf("%s %s: message %q does not name %s", tt.method, tt.path, msg, tt.allow)
		}
	}
	// HEAD works wherever GET does.
	f := newFixture(t, "")
	for _, path := range []string{"/healthz", "/readyz", "/status", "/metrics"} {
		if w := f.do(http.MethodHead, path, "", loopback); w.Code != http.StatusOK {
			t.Errorf("HEAD %s: %d", path, w.Code)
		}
	}
}

func TestUnknownPath(t *testing.T) {
	f := newFixture(t, token)
	for _, path := range []string{"/index.html", "/nope", "/healthz/x", "/pair/", "/pair/qr.jpg", "/api/v1", "/api/v2/pair", "/api/v1/pair/code/x"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			msg := wantError(t, f.do(method, path, ""), http.StatusNotFound)
			if !strings.Contains(msg, path) {
				t.Errorf("%s %s: message %q does not name the path", method, path, msg)
			}
		}
	}
}

func FuzzPairCodeBody(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `{"phone":"+49 151 2345 6789"}`, `{"phone":"0151"}`, `{"phone":1}`,
		`{"phone":"4915123456789","x":1}`, `{"phone":"4915123456789"}{}`, `{"phone":"4915123456789"}]`,
		`[`, `"\ud800"`, `{"phone":"\u0000"}`, `{"PHONE":"4915123456789"}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	fx := newFixture(f, "")
	f.Fuzz(func(t *testing.T, body []byte) {
		w := fx.do(http.MethodPost, "/api/v1/pair/code", string(body), loopback)
		if w.Code >= 500 {
			t.Fatalf("body %q: status %d: %s", body, w.Code, w.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("body %q: response is not JSON: %q", body, w.Body)
		}
		switch w.Code {
		case http.StatusOK:
			if m["pair_code"] != "ABCD-EFGH" {
				t.Fatalf("body %q: 200 without pair_code: %v", body, m)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if s, _ := m["error"].(string); s == "" {
				t.Fatalf("body %q: %d without error: %v", body, w.Code, m)
			}
		default:
			t.Fatalf("body %q: unexpected status %d", body, w.Code)
		}
	})
}

// TestStatusAnswersWhateverTheDatabaseDoes: /status asks the database for
// the backups, and a database that never answers (a black-holed
// connection) held it until the client gave up (issue 13, case 6). The
// question now has a deadline of its own.
func TestStatusAnswersWhateverTheDatabaseDoes(t *testing.T) {
	var deadline time.Time
	h := httpapi.New(httpapi.Options{Conn: &fakeConn{}, DB: &fakeDB{}, Metrics: metrics.New(),
		Backups: func(ctx context.Context) any {
			deadline, _ = ctx.Deadline()
			<-ctx.Done() // the database never answers
			return map[string]any{"error": ctx.Err().Error()}
		}})
	f := &fixture{h: h}
	done := make(chan *httptest.ResponseRecorder, 1)
	start := time.Now()
	go func() { done <- f.do(http.MethodGet, "/status", "", loopback) }()
	select {
	case w := <-done:
		if w.Code != http.StatusOK {
			t.Fatalf("status %d", w.Code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("/status did not answer while the database hung")
	}
	if deadline.IsZero() || deadline.Sub(start) > 2*time.Second {
		t.Errorf("the backups question had deadline %v (asked at %v); want about a second", deadline, start)
	}
}
