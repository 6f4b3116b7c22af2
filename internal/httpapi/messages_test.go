package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

const (
	number = "4915123456789"
	chat   = number + "@s.whatsapp.net"
	other  = "15550100199@s.whatsapp.net"
	group  = "120363012345678901@g.us"
)

// msgFixture serves the API over a real queue on a fresh SQLite database.
type msgFixture struct {
	*fixture
	q *outgoing.Queue
}

// newQueue opens a migrated SQLite database in t's temporary directory and
// a queue on it.
func newQueue(t testing.TB, opts outgoing.Options) *outgoing.Queue {
	t.Helper()
	s := testkit.Store(t, store.SQLite)
	if opts.PollInterval == 0 {
		opts.PollInterval = 5 * time.Millisecond
	}
	return outgoing.New(s.DB(), s.Engine(), opts)
}

// serve returns a fixture whose handler has q (which may be nil) as its Outgoing.
func serve(tok string, q httpapi.Outgoing) *fixture {
	f := &fixture{conn: &fakeConn{}, db: &fakeDB{}, metrics: metrics.New(), started: time.Now()}
	f.h = httpapi.New(httpapi.Options{
		Conn: f.conn, DB: f.db, Metrics: f.metrics, Token: tok, Outgoing: q, Started: f.started,
	})
	return f
}

func newMsgFixture(t testing.TB, opts outgoing.Options) *msgFixture {
	t.Helper()
	q := newQueue(t, opts)
	return &msgFixture{fixture: serve("", q), q: q}
}

// message decodes a response holding one message.
func message(t *testing.T, body []byte) outgoing.Message {
	t.Helper()
	var m outgoing.Message
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("response is not a message: %v: %q", err, body)
	}
	return m
}

// post queues a message through the API and returns its id, failing
// unless it is created.
func (f *msgFixture) post(t *testing.T, to, text string) int64 {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"to": to, "text": text})
	w := f.do(http.MethodPost, "/api/v1/messages", string(body), loopback)
	if w.Code != http.StatusAccepted {
		t.Fatalf("POST message: status %d; body %q", w.Code, w.Body.String())
	}
	return message(t, w.Body.Bytes()).ID
}

// get reads a message through the API.
func (f *msgFixture) get(t *testing.T, id int64) outgoing.Message {
	t.Helper()
	w := f.do(http.MethodGet, fmt.Sprintf("/api/v1/messages/%d", id), "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("GET message %d: status %d; body %q", id, w.Code, w.Body.String())
	}
	decode(t, w)
	return message(t, w.Body.Bytes())
}

// deliver runs the dispatcher until every message in ids has left pending
// and sending, then stops it. Texts starting with "fail" fail permanently
// (the message goes dead); every other text is sent.
func (f *msgFixture) deliver(t *testing.T, ids ...int64) {
	t.Helper()
	sender := outgoing.SenderFunc(func(ctx context.Context, m outgoing.Message) error {
		if strings.HasPrefix(m.Text, "fail") {
			return outgoing.Permanent(errors.New("x"))
		}
		return nil
	})
	stop := runQueue(t, f.q, sender)
	defer stop()
	for _, id := range ids {
		testkit.WaitFor(t, fmt.Sprintf("message %d to be delivered or dead", id), func() bool {
			m, err := f.q.Get(context.Background(), id)
			if err != nil {
				t.Fatalf("Get %d: %v", id, err)
			}
			return m.State == outgoing.Sent || m.State == outgoing.Dead
		})
	}
}

// runQueue starts q's dispatcher with an open gate; stop cancels it and
// waits for it to return.
func runQueue(t *testing.T, q *outgoing.Queue, s outgoing.Sender) (stop func()) {
	t.Helper()
	return testkit.Go(t, func(ctx context.Context) error { return q.Run(ctx, s, outgoing.NewSwitchGate(true)) })
}

// escapedText is a JSON string literal of n bytes of text, each byte
// written as a \u escape: the largest body a text of n bytes can take.
func escapedText(n int) string {
	return `"` + strings.Repeat(`\u0001`, n) + `"`
}

func TestPostMessage(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		want     int
		wantTo   string
		wantText string
		wantErr  string // part of the error, for 4xx
	}{
		{"phone number", `{"to":"4915123456789","text":"hello"}`, 202, chat, "hello", ""},
		{"phone number with plus and spaces", `{"to":"+49 151 2345 6789","text":"hello"}`, 202, chat, "hello", ""},
		{"user JID", `{"to":"4915123456789@s.whatsapp.net","text":"hi"}`, 202, chat, "hi", ""},
		{"group JID", `{"to":"120363012345678901@g.us","text":"hi all"}`, 202, group, "hi all", ""},
		{"with idempotency key", `{"to":"4915123456789","text":"hello","idempotency_key":"k1"}`, 202, chat, "hello", ""},
		{"unicode text", `{"to":"4915123456789","text":"Grüße 👋\n"}`, 202, chat, "Grüße 👋\n", ""},
		{"longest text", `{"to":"4915123456789","text":"` + strings.Repeat("a", outgoing.MaxTextBytes) + `"}`, 202, chat, strings.Repeat("a", outgoing.MaxTextBytes), ""},
		{"longest text, all escaped", `{"to":"4915123456789","text":` + escapedText(outgoing.MaxTextBytes) + `}`, 202, chat, strings.Repeat("\x01", outgoing.MaxTextBytes), ""},

		{"bad JSON", `{"to":"4915123456789",`, 400, "", "", "invalid JSON"},
		{"not JSON", `to=4915123456789&text=hi`, 400, "", "", "invalid JSON"},
		{"empty body", ``, 400, "", "", "empty body"},
		{"null", `null`, 400, "", "", "required"},
		{"array", `[{"to":"4915123456789","text":"hi"}]`, 400, "", "", "invalid JSON"},
		{"two objects", `{"to":"4915123456789","text":"a"}{"to":"4915123456789","text":"b"}`, 400, "", "", "invalid JSON"},
		{"trailing garbage", `{"to":"4915123456789","text":"a"} x`, 400, "", "", "invalid JSON"},
		{"unknown field", `{"to":"4915123456789","text":"hi","priority":1}`, 400, "", "", "priority"},
		{"misspelled field", `{"to":"4915123456789","txt":"hi"}`, 400, "", "", "txt"},
		{"number as JSON number", `{"to":4915123456789,"text":"hi"}`, 400, "", "", "invalid JSON"},
		{"missing to", `{"text":"hi"}`, 400, "", "", `"to" is required`},
		{"blank to", `{"to":"  ","text":"hi"}`, 400, "", "", `"to" is required`},
		{"missing text", `{"to":"4915123456789"}`, 400, "", "", `"text" is required`},
		{"empty text", `{"to":"4915123456789","text":""}`, 400, "", "", `"text" is required`},
		{"whitespace text", `{"to":"4915123456789","text":" \n\t"}`, 400, "", "", "text is empty"},
		{"text with NUL", `{"to":"4915123456789","text":"a\u0000b"}`, 400, "", "", "NUL"},
		{"text too long", `{"to":"4915123456789","text":"` + strings.Repeat("a", outgoing.MaxTextBytes+1) + `"}`, 400, "", "", "65537 bytes"},
		{"text too long, all escaped", `{"to":"4915123456789","text":` + escapedText(outgoing.MaxTextBytes+1) + `}`, 400, "", "", "65537 bytes"},
		{"national number", `{"to":"015123456789","text":"hi"}`, 400, "", "", "recipient"},
		{"too short number", `{"to":"12345","text":"hi"}`, 400, "", "", "recipient"},
		{"letters in number", `{"to":"49151abc","text":"hi"}`, 400, "", "", "recipient"},
		{"device JID", `{"to":"4915123456789:12@s.whatsapp.net","text":"hi"}`, 400, "", "", "device"},
		{"unknown server", `{"to":"4915123456789@example.com","text":"hi"}`, 400, "", "", "server"},
		{"idempotency key too long", `{"to":"4915123456789","text":"hi","idempotency_key":"` + strings.Repeat("k", 256) + `"}`, 400, "", "", "idempotency key"},
		// What encoding/json would repair is refused, naming the field (issue 13, case 10).
		{"surrogate pair", `{"to":"4915123456789","text":"\ud83d\udc4b"}`, 202, chat, "👋", ""},
		{"escaped backslash before u", `{"to":"4915123456789","text":"a\\ud800"}`, 202, chat, `a\ud800`, ""},
		{"invalid UTF-8 in text", "{\"to\":\"4915123456789\",\"text\":\"a\xffb\"}", 400, "", "", `field "text": not valid UTF-8`},
		{"lone high surrogate", `{"to":"4915123456789","text":"a\ud800b"}`, 400, "", "", `field "text": a lone surrogate`},
		{"lone low surrogate", `{"to":"4915123456789","text":"\udc00"}`, 400, "", "", `field "text": a lone surrogate`},
		{"high surrogate at the end", `{"to":"4915123456789","text":"\ud83d"}`, 400, "", "", "lone surrogate"},
		{"invalid UTF-8 in to", "{\"to\":\"49151\xc3\",\"text\":\"hi\"}", 400, "", "", `field "to"`},
		{"duplicate field", `{"to":"4915123456789","text":"first","text":"second"}`, 400, "", "", `field "text" appears twice`},
		{"field in capitals", `{"to":"4915123456789","Text":"hi"}`, 400, "", "", `"Text": field names are case-sensitive`},
		{"JID with trailing text", `{"to":"4915123456789@s.whatsapp.net@anything","text":"hi"}`, 400, "", "", "remove what follows"},
		{"oversized body", `{"to":"4915123456789","text":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "", "", "larger than"},
		{"oversized padding", `{"to":"4915123456789","text":"a"}` + strings.Repeat(" ", 1<<20), 413, "", "", "larger than"},
	}
	f := newMsgFixture(t, outgoing.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := f.do(http.MethodPost, "/api/v1/messages", tt.body, loopback)
			if tt.want != http.StatusAccepted {
				msg := wantError(t, w, tt.want)
				if !strings.Contains(msg, tt.wantErr) {
					t.Errorf("error %q does not contain %q", msg, tt.wantErr)
				}
				return
			}
			if w.Code != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %q", w.Code, w.Body.String())
			}
			m := decode(t, w)
			if m["created"] != true || m["state"] != "pending" {
				t.Errorf("created %v, state %v; want true, pending", m["created"], m["state"])
			}
			if wa, _ := m["wa_id"].(string); wa == "" {
				t.Errorf("no wa_id in %v", m)
			}
			msg := message(t, w.Body.Bytes())
			if msg.ID <= 0 {
				t.Fatalf("id %d", msg.ID)
			}
			if loc, want := w.Header().Get("Location"), "/api/v1/messages/"+strconv.FormatInt(msg.ID, 10); loc != want {
				t.Errorf("Location %q, want %q", loc, want)
			}
			got := f.get(t, msg.ID)
			if got.To != tt.wantTo || got.Text != tt.wantText || got.WAID != msg.WAID || got.State != outgoing.Pending {
				t.Errorf("stored to %q, text %.20q, wa_id %q, state %s; want %q, %.20q, %q, pending",
					got.To, got.Text, got.WAID, got.State, tt.wantTo, tt.wantText, msg.WAID)
			}
		})
	}
}

func TestPostMessageIdempotent(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{})
	first := f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"first","idempotency_key":"order-42"}`, loopback)
	if first.Code != http.StatusAccepted {
		t.Fatalf("first POST: %d %q", first.Code, first.Body.String())
	}
	orig := message(t, first.Body.Bytes())

	// The repeat's to and text are ignored: the original is the answer.
	for _, body := range []string{
		`{"to":"4915123456789","text":"first","idempotency_key":"order-42"}`,
		`{"to":"15550100199","text":"changed","idempotency_key":"order-42"}`,
	} {
		w := f.do(http.MethodPost, "/api/v1/messages", body, loopback)
		if w.Code != http.StatusOK {
			t.Fatalf("repeat: status %d, want 200; body %q", w.Code, w.Body.String())
		}
		m := decode(t, w)
		if m["created"] != false {
			t.Errorf("repeat: created %v, want false", m["created"])
		}
		got := message(t, w.Body.Bytes())
		if got.ID != orig.ID || got.WAID != orig.WAID || got.Text != "first" || got.To != chat {
			t.Errorf("repeat returned id %d wa_id %q text %q to %q; want the original %d %q first %s",
				got.ID, got.WAID, got.Text, got.To, orig.ID, orig.WAID, chat)
		}
	}

	// Another key, or none, is another message.
	w := f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"first","idempotency_key":"order-43"}`, loopback)
	if w.Code != http.StatusAccepted || message(t, w.Body.Bytes()).ID == orig.ID {
		t.Errorf("new key: status %d, body %q", w.Code, w.Body.String())
	}
	w = f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"first"}`, loopback)
	if w.Code != http.StatusAccepted {
		t.Errorf("no key: status %d", w.Code)
	}
	depths := decode(t, f.do(http.MethodGet, "/api/v1/queue", "", loopback))["depths"].(map[string]any)
	if depths["pending"] != 3.0 {
		t.Errorf("pending %v, want 3", depths["pending"])
	}
}

func TestPostMessageBacklogFull(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{MaxPending: 1})
	w := f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"one","idempotency_key":"a"}`, loopback)
	if w.Code != http.StatusAccepted {
		t.Fatalf("first: %d %q", w.Code, w.Body.String())
	}
	id := message(t, w.Body.Bytes()).ID
	w = f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"two"}`, loopback)
	msg := wantError(t, w, http.StatusServiceUnavailable)
	if !strings.Contains(msg, "backlog") {
		t.Errorf("error %q does not say the backlog is full", msg)
	}
	if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra <= 0 {
		t.Errorf("Retry-After %q, want a number of seconds", w.Header().Get("Retry-After"))
	}
	// A repeat of a queued message is still answered while the backlog is full.
	w = f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"one","idempotency_key":"a"}`, loopback)
	if w.Code != http.StatusOK || message(t, w.Body.Bytes()).ID != id {
		t.Errorf("repeat while full: status %d body %q", w.Code, w.Body.String())
	}
	// An invalid request is refused as such, full or not.
	wantError(t, f.do(http.MethodPost, "/api/v1/messages", `{"to":"0151","text":"two"}`, loopback), http.StatusBadRequest)
}

func TestGetMessage(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{})
	id := f.post(t, number, "hello")
	w := f.do(http.MethodGet, fmt.Sprintf("/api/v1/messages/%d", id), "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d; body %q", w.Code, w.Body.String())
	}
	m := decode(t, w)
	for _, key := range []string{"id", "to", "text", "state", "attempts", "wa_id", "created_at", "updated_at", "next_attempt_at"} {
		if _, ok := m[key]; !ok {
			t.Errorf("message lacks %s: %v", key, m)
		}
	}
	if m["id"] != float64(id) || m["to"] != chat || m["text"] != "hello" || m["state"] != "pending" || m["attempts"] != 0.0 {
		t.Errorf("message %v", m)
	}
	if w := f.do(http.MethodHead, fmt.Sprintf("/api/v1/messages/%d", id), "", loopback); w.Code != http.StatusOK {
		t.Errorf("HEAD: %d", w.Code)
	}

	for _, bad := range []string{"abc", "0", "-1", "+1", "1.5", "1e3", "0x10", "99999999999999999999", "%20"} {
		msg := wantError(t, f.do(http.MethodGet, "/api/v1/messages/"+bad, "", loopback), http.StatusBadRequest)
		if !strings.Contains(msg, "id") {
			t.Errorf("%s: error %q does not name the id", bad, msg)
		}
	}
	wantError(t, f.do(http.MethodGet, fmt.Sprintf("/api/v1/messages/%d", id+1), "", loopback), http.StatusNotFound)
	wantError(t, f.do(http.MethodGet, "/api/v1/messages/9223372036854775807", "", loopback), http.StatusNotFound)
}

// list fetches a page and returns its message ids and next_before (0 when absent).
func (f *msgFixture) list(t *testing.T, query string) ([]int64, int64) {
	t.Helper()
	w := f.do(http.MethodGet, "/api/v1/messages"+query, "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d; body %q", query, w.Code, w.Body.String())
	}
	m := decode(t, w)
	if _, ok := m["messages"].([]any); !ok {
		t.Fatalf("GET %s: messages is %#v, want an array", query, m["messages"])
	}
	var body struct {
		Messages   []outgoing.Message `json:"messages"`
		NextBefore *int64             `json:"next_before"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	ids := []int64{}
	for _, msg := range body.Messages {
		ids = append(ids, msg.ID)
	}
	var next int64
	if body.NextBefore != nil {
		if *body.NextBefore <= 0 {
			t.Errorf("GET %s: next_before %d", query, *body.NextBefore)
		}
		next = *body.NextBefore
	}
	return ids, next
}

func TestListMessages(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{})
	if ids, next := f.list(t, ""); len(ids) != 0 || next != 0 {
		t.Fatalf("empty queue: ids %v next %d", ids, next)
	}
	var ids []int64 // 1 and 3 fail, 2 is sent, 4..6 stay pending
	ids = append(ids, f.post(t, number, "fail 1"), f.post(t, other, "sent 2"), f.post(t, number, "fail 3"))
	f.deliver(t, ids...)
	ids = append(ids, f.post(t, number, "pending 4"), f.post(t, other, "pending 5"), f.post(t, group, "pending 6"))
	id := func(n int) int64 { return ids[n-1] }

	tests := []struct {
		query    string
		want     []int64
		wantNext int64
	}{
		{"", []int64{id(6), id(5), id(4), id(3), id(2), id(1)}, 0},
		{"?limit=2", []int64{id(6), id(5)}, id(5)},
		{fmt.Sprintf("?limit=2&before=%d", id(5)), []int64{id(4), id(3)}, id(3)},
		{fmt.Sprintf("?limit=2&before=%d", id(3)), []int64{id(2), id(1)}, 0},
		{"?limit=6", []int64{id(6), id(5), id(4), id(3), id(2), id(1)}, 0},
		{"?limit=5", []int64{id(6), id(5), id(4), id(3), id(2)}, id(2)},
		{"?limit=1000", []int64{id(6), id(5), id(4), id(3), id(2), id(1)}, 0},
		{fmt.Sprintf("?before=%d", id(1)), []int64{}, 0},
		{"?state=dead", []int64{id(3), id(1)}, 0},
		{"?state=dead&limit=1", []int64{id(3)}, id(3)},
		{fmt.Sprintf("?state=dead&limit=1&before=%d", id(3)), []int64{id(1)}, 0},
		{"?state=sent", []int64{id(2)}, 0},
		{"?state=pending", []int64{id(6), id(5), id(4)}, 0},
		{"?state=sending", []int64{}, 0},
		{"?to=4915123456789", []int64{id(4), id(3), id(1)}, 0},
		{"?to=%2B49+151+2345+6789", []int64{id(4), id(3), id(1)}, 0},
		{"?to=" + chat, []int64{id(4), id(3), id(1)}, 0},
		{"?to=" + group, []int64{id(6)}, 0},
		{"?to=4915123456789&state=dead", []int64{id(3), id(1)}, 0},
		{"?to=4915123456789&state=sent", []int64{}, 0},
	}
	for _, tt := range tests {
		got, next := f.list(t, tt.query)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || next != tt.wantNext {
			t.Errorf("GET %s: ids %v next_before %d; want %v, %d", tt.query, got, next, tt.want, tt.wantNext)
		}
	}

	// Walking the pages with next_before visits every message once.
	var walked []int64
	query := "?limit=4"
	for range 10 {
		page, next := f.list(t, query)
		walked = append(walked, page...)
		if next == 0 {
			break
		}
		query = fmt.Sprintf("?limit=4&before=%d", next)
	}
	if fmt.Sprint(walked) != fmt.Sprint([]int64{id(6), id(5), id(4), id(3), id(2), id(1)}) {
		t.Errorf("paging walked %v", walked)
	}

	for _, bad := range []struct{ query, wantErr string }{
		{"?state=bogus", "state"},
		{"?state=DEAD", "state"},
		{"?state=", "state"},
		{"?limit=0", "limit"},
		{"?limit=-1", "limit"},
		{"?limit=abc", "limit"},
		{"?limit=1001", "limit"},
		{"?limit=", "limit"},
		{"?limit=99999999999999999999", "limit"},
		{"?before=0", "before"},
		{"?before=x", "before"},
		{"?to=", "to"},
		{"?to=0151", "recipient"},
		{"?to=4915123456789:3@s.whatsapp.net", "device"},
		{"?stat=dead", "stat"},
		{"?state=dead&state=sent", "state"},
		{"?limit=%zz", "query"},
	} {
		msg := wantError(t, f.do(http.MethodGet, "/api/v1/messages"+bad.query, "", loopback), http.StatusBadRequest)
		if !strings.Contains(msg, bad.wantErr) {
			t.Errorf("GET %s: error %q does not name %q", bad.query, msg, bad.wantErr)
		}
	}
}

func TestRetryAndPurge(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{})
	dead1, dead2, sent := f.post(t, number, "fail 1"), f.post(t, other, "fail 2"), f.post(t, number, "ok 3")
	f.deliver(t, dead1, dead2, sent)
	pending := f.post(t, group, "waiting")
	for id, want := range map[int64]outgoing.State{dead1: outgoing.Dead, dead2: outgoing.Dead, sent: outgoing.Sent, pending: outgoing.Pending} {
		if got := f.get(t, id); got.State != want {
			t.Fatalf("message %d is %s, want %s", id, got.State, want)
		}
	}
	d := f.get(t, dead1)
	if d.LastError == "" || d.Attempts == 0 {
		t.Errorf("dead message has last_error %q, attempts %d", d.LastError, d.Attempts)
	}

	path := func(id int64, suffix string) string { return fmt.Sprintf("/api/v1/messages/%d%s", id, suffix) }

	// Only dead messages can be retried.
	wantError(t, f.do(http.MethodPost, path(pending, "/retry"), "", loopback), http.StatusConflict)
	wantError(t, f.do(http.MethodPost, path(sent, "/retry"), "", loopback), http.StatusConflict)
	wantError(t, f.do(http.MethodPost, path(pending+100, "/retry"), "", loopback), http.StatusNotFound)
	wantError(t, f.do(http.MethodPost, "/api/v1/messages/x/retry", "", loopback), http.StatusBadRequest)
	w := f.do(http.MethodPost, path(dead1, "/retry"), "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("retry dead: status %d; body %q", w.Code, w.Body.String())
	}
	decode(t, w)
	r := message(t, w.Body.Bytes())
	if r.ID != dead1 || r.State != outgoing.Pending || r.Attempts != 0 || r.WAID != d.WAID {
		t.Errorf("retried message: id %d state %s attempts %d wa_id %q; want %d pending 0 %q", r.ID, r.State, r.Attempts, r.WAID, dead1, d.WAID)
	}
	wantError(t, f.do(http.MethodPost, path(dead1, "/retry"), "", loopback), http.StatusConflict)

	// Only dead and sent messages can be purged one by one.
	wantError(t, f.do(http.MethodDelete, path(pending, ""), "", loopback), http.StatusConflict)
	wantError(t, f.do(http.MethodDelete, path(dead1, ""), "", loopback), http.StatusConflict) // pending again
	wantError(t, f.do(http.MethodDelete, path(pending+100, ""), "", loopback), http.StatusNotFound)
	wantError(t, f.do(http.MethodDelete, "/api/v1/messages/0", "", loopback), http.StatusBadRequest)
	if w := f.do(http.MethodDelete, path(sent, ""), "", loopback); w.Code != http.StatusNoContent || w.Body.Len() != 0 {
		t.Fatalf("purge sent: status %d, body %q; want 204 and no body", w.Code, w.Body.String())
	}
	wantError(t, f.do(http.MethodGet, path(sent, ""), "", loopback), http.StatusNotFound)
	wantError(t, f.do(http.MethodDelete, path(sent, ""), "", loopback), http.StatusNotFound)

	// Retry every dead message: only dead2 is dead now.
	w = f.do(http.MethodPost, "/api/v1/messages/retry-dead", "", loopback)
	if w.Code != http.StatusOK || decode(t, w)["retried"] != 1.0 {
		t.Fatalf("retry-dead: status %d body %q; want retried 1", w.Code, w.Body.String())
	}
	if got := f.get(t, dead2); got.State != outgoing.Pending {
		t.Errorf("after retry-dead message %d is %s", dead2, got.State)
	}
	if w := f.do(http.MethodPost, "/api/v1/messages/retry-dead", "", loopback); decode(t, w)["retried"] != 0.0 {
		t.Errorf("second retry-dead: %q", w.Body.String())
	}

	// They fail again; a purge by state removes the dead ones only.
	f.deliver(t, dead1, dead2, pending)
	for _, bad := range []string{"", "?state=sent", "?state=pending", "?state=bogus", "?state=dead&to=4915123456789", "?state=dead&state=dead"} {
		wantError(t, f.do(http.MethodDelete, "/api/v1/messages"+bad, "", loopback), http.StatusBadRequest)
	}
	w = f.do(http.MethodDelete, "/api/v1/messages?state=dead", "", loopback)
	if w.Code != http.StatusOK || decode(t, w)["purged"] != 2.0 {
		t.Fatalf("purge dead: status %d body %q; want purged 2", w.Code, w.Body.String())
	}
	wantError(t, f.do(http.MethodGet, path(dead1, ""), "", loopback), http.StatusNotFound)
	wantError(t, f.do(http.MethodGet, path(dead2, ""), "", loopback), http.StatusNotFound)
	if got := f.get(t, pending); got.State != outgoing.Sent {
		t.Errorf("message %d is %s after purging dead ones", pending, got.State)
	}
	if w := f.do(http.MethodDelete, "/api/v1/messages?state=dead", "", loopback); decode(t, w)["purged"] != 0.0 {
		t.Errorf("second purge: %q", w.Body.String())
	}
}

// A message being sent can be neither retried nor purged.
func TestSendingMessageIsLocked(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{})
	id := f.post(t, number, "hold")
	release := make(chan struct{})
	stop := runQueue(t, f.q, outgoing.SenderFunc(func(ctx context.Context, m outgoing.Message) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}))
	testkit.WaitFor(t, "the message to be sending", func() bool { return f.get(t, id).State == outgoing.Sending })
	wantError(t, f.do(http.MethodDelete, fmt.Sprintf("/api/v1/messages/%d", id), "", loopback), http.StatusConflict)
	wantError(t, f.do(http.MethodPost, fmt.Sprintf("/api/v1/messages/%d/retry", id), "", loopback), http.StatusConflict)
	if ids, _ := f.list(t, "?state=sending"); fmt.Sprint(ids) != fmt.Sprint([]int64{id}) {
		t.Errorf("sending messages %v", ids)
	}
	close(release)
	testkit.WaitFor(t, "the message to be sent", func() bool { return f.get(t, id).State == outgoing.Sent })
	stop()
	if got := f.get(t, id); got.SentAt.IsZero() {
		t.Errorf("sent message without sent_at: %+v", got)
	}
}

func TestQueueStatus(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newMsgFixture(t, outgoing.Options{Now: clock})

	check := func(want map[string]float64, wantAge float64) {
		t.Helper()
		w := f.do(http.MethodGet, "/api/v1/queue", "", loopback)
		if w.Code != http.StatusOK {
			t.Fatalf("status %d; body %q", w.Code, w.Body.String())
		}
		m := decode(t, w)
		depths, _ := m["depths"].(map[string]any)
		for _, s := range outgoing.States() {
			if depths[string(s)] != want[string(s)] {
				t.Errorf("depths[%s] = %v, want %v", s, depths[string(s)], want[string(s)])
			}
		}
		if m["oldest_pending_age_seconds"] != wantAge {
			t.Errorf("oldest_pending_age_seconds = %v, want %v", m["oldest_pending_age_seconds"], wantAge)
		}
	}
	check(map[string]float64{"pending": 0, "sending": 0, "sent": 0, "dead": 0}, 0)
	f.post(t, number, "one")
	advance(90 * time.Second)
	f.post(t, number, "two")
	advance(1500 * time.Millisecond)
	check(map[string]float64{"pending": 2, "sending": 0, "sent": 0, "dead": 0}, 91.5)
	if w := f.do(http.MethodHead, "/api/v1/queue", "", loopback); w.Code != http.StatusOK {
		t.Errorf("HEAD: %d", w.Code)
	}
}

// fakeOutgoing answers every call with msg or err and records the calls.
type fakeOutgoing struct {
	msg outgoing.Message
	err error

	mu    sync.Mutex
	calls []string
}

func (o *fakeOutgoing) called(name string) {
	o.mu.Lock()
	o.calls = append(o.calls, name)
	o.mu.Unlock()
}

func (o *fakeOutgoing) Enqueue(ctx context.Context, req outgoing.Request) (outgoing.Message, bool, error) {
	o.called("Enqueue")
	return o.msg, true, o.err
}
func (o *fakeOutgoing) Get(ctx context.Context, id int64) (outgoing.Message, error) {
	o.called("Get")
	return o.msg, o.err
}
func (o *fakeOutgoing) List(ctx context.Context, f outgoing.Filter) ([]outgoing.Message, error) {
	o.called("List")
	return []outgoing.Message{o.msg}, o.err
}
func (o *fakeOutgoing) Retry(ctx context.Context, id int64) (outgoing.Message, error) {
	o.called("Retry")
	return o.msg, o.err
}
func (o *fakeOutgoing) RetryAllDead(ctx context.Context) (int64, error) {
	o.called("RetryAllDead")
	return 3, o.err
}
func (o *fakeOutgoing) Purge(ctx context.Context, id int64) error {
	o.called("Purge")
	return o.err
}
func (o *fakeOutgoing) PurgeDead(ctx context.Context) (int64, error) {
	o.called("PurgeDead")
	return 2, o.err
}
func (o *fakeOutgoing) Depths(ctx context.Context) (map[outgoing.State]int, error) {
	o.called("Depths")
	return map[outgoing.State]int{outgoing.Pending: 1}, o.err
}
func (o *fakeOutgoing) OldestPendingAge(ctx context.Context) (time.Duration, error) {
	o.called("OldestPendingAge")
	return time.Second, o.err
}
func (o *fakeOutgoing) Receipts(ctx context.Context, id int64) ([]outgoing.StoredReceipt, error) {
	o.called("Receipts")
	return []outgoing.StoredReceipt{}, o.err
}

// msgEndpoints lists every message endpoint with a request that succeeds
// on a fakeOutgoing and the status it succeeds with.
var msgEndpoints = []struct {
	method, path, body string
	want               int
}{
	{http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"hi"}`, 202},
	{http.MethodGet, "/api/v1/messages", "", 200},
	{http.MethodGet, "/api/v1/messages?state=dead&limit=5", "", 200},
	{http.MethodDelete, "/api/v1/messages?state=dead", "", 200},
	{http.MethodGet, "/api/v1/messages/7", "", 200},
	{http.MethodDelete, "/api/v1/messages/7", "", 204},
	{http.MethodPost, "/api/v1/messages/7/retry", "", 200},
	{http.MethodGet, "/api/v1/messages/7/receipts", "", 200},
	{http.MethodPost, "/api/v1/messages/retry-dead", "", 200},
	{http.MethodGet, "/api/v1/queue", "", 200},
}

func TestMessagesAuthWithToken(t *testing.T) {
	tests := []struct {
		name  string
		opts  []reqOpt
		admit bool
	}{
		{"no token", nil, false},
		{"no token from loopback", []reqOpt{loopback}, false},
		{"wrong bearer token", []reqOpt{bearer("wrong-token-0123456789abcdef")}, false},
		{"token prefix", []reqOpt{bearer(token[:16])}, false},
		{"token in query", []reqOpt{func(r *http.Request) { r.URL.RawQuery += "&token=" + token }}, false},
		{"bearer token", []reqOpt{bearer(token)}, true},
		{"bearer token from afar", []reqOpt{bearer(token), fromAddr("203.0.113.9:1234")}, true},
		{"basic auth password", []reqOpt{func(r *http.Request) { r.SetBasicAuth("admin", token) }}, true},
	}
	for _, ep := range msgEndpoints {
		for _, tt := range tests {
			t.Run(ep.method+" "+ep.path+"/"+tt.name, func(t *testing.T) {
				q := &fakeOutgoing{msg: outgoing.Message{ID: 7, State: outgoing.Pending}}
				f := serve(token, q)
				w := f.do(ep.method, ep.path, ep.body, tt.opts...)
				if tt.admit {
					if w.Code != ep.want {
						t.Fatalf("status %d, want %d; body %q", w.Code, ep.want, w.Body.String())
					}
					return
				}
				wantError(t, w, http.StatusUnauthorized)
				if len(q.calls) != 0 {
					t.Errorf("queue called without a valid token: %v", q.calls)
				}
			})
		}
	}
}

func TestMessagesAuthWithoutToken(t *testing.T) {
	tests := []struct {
		name  string
		opts  []reqOpt
		admit bool
	}{
		{"IPv4 loopback", []reqOpt{loopback}, true},
		{"IPv6 loopback", []reqOpt{fromAddr("[::1]:1234")}, true},
		{"LAN address", []reqOpt{fromAddr("192.168.1.20:40000")}, false},
		{"public address with a bearer token", []reqOpt{fromAddr("203.0.113.9:1234"), bearer("anything")}, false},
		{"X-Forwarded-For loopback", []reqOpt{fromAddr("203.0.113.9:1234"), header("X-Forwarded-For", "127.0.0.1")}, false},
		{"httptest default address", nil, false},
	}
	for _, ep := range msgEndpoints {
		for _, tt := range tests {
			t.Run(ep.method+" "+ep.path+"/"+tt.name, func(t *testing.T) {
				q := &fakeOutgoing{msg: outgoing.Message{ID: 7, State: outgoing.Pending}}
				f := serve("", q)
				w := f.do(ep.method, ep.path, ep.body, tt.opts...)
				if tt.admit {
					if w.Code != ep.want {
						t.Fatalf("status %d, want %d; body %q", w.Code, ep.want, w.Body.String())
					}
					return
				}
				if msg := wantError(t, w, http.StatusForbidden); !strings.Contains(msg, "API_TOKEN") {
					t.Errorf("403 should tell the operator to set API_TOKEN: %q", msg)
				}
				if len(q.calls) != 0 {
					t.Errorf("queue called from a remote address without a token: %v", q.calls)
				}
			})
		}
	}
}

// The auth check comes before the missing queue is reported.
func TestMessagesWithoutQueue(t *testing.T) {
	var nilQueue *outgoing.Queue
	for name, q := range map[string]httpapi.Outgoing{"nil": nil, "nil *outgoing.Queue": nilQueue} {
		f := serve(token, q)
		for _, ep := range msgEndpoints {
			wantError(t, f.do(ep.method, ep.path, ep.body), http.StatusUnauthorized)
			msg := wantError(t, f.do(ep.method, ep.path, ep.body, bearer(token)), http.StatusServiceUnavailable)
			if msg != "queue not available" {
				t.Errorf("%s: %s %s: error %q", name, ep.method, ep.path, msg)
			}
		}
	}
}

// Queue errors map to their statuses, always as JSON errors.
func TestMessagesQueueErrors(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fmt.Errorf("%w: recipient is bad", outgoing.ErrInvalid), 400},
		{fmt.Errorf("get message 7: %w", outgoing.ErrNotFound), 404},
		{fmt.Errorf("retry message 7: %w: only dead", outgoing.ErrWrongState), 409},
		{fmt.Errorf("%w: 10 waiting", outgoing.ErrBacklogFull), 503},
		// A database that is down or restarting is a "not now" (issue 13, case 6).
		{fmt.Errorf("enqueue: %w", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}), 503},
		{fmt.Errorf("enqueue: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}), 503},
		{errors.New("a statement the database refused"), 500},
	}
	for _, tt := range tests {
		for _, ep := range msgEndpoints {
			q := &fakeOutgoing{err: tt.err}
			w := serve("", q).do(ep.method, ep.path, ep.body, loopback)
			msg := wantError(t, w, tt.want)
			if !strings.Contains(msg, tt.err.Error()) {
				t.Errorf("%s %s with %v: error %q", ep.method, ep.path, tt.err, msg)
			}
			if (w.Header().Get("Retry-After") != "") != (tt.want == 503) {
				t.Errorf("%s %s with %v: Retry-After %q", ep.method, ep.path, tt.err, w.Header().Get("Retry-After"))
			}
		}
	}
}

func TestMessagesWrongMethod(t *testing.T) {
	f := serve("", &fakeOutgoing{})
	tests := []struct{ method, path, allow string }{
		{http.MethodPut, "/api/v1/messages", "GET, POST, DELETE"},
		{http.MethodPatch, "/api/v1/messages", "GET, POST, DELETE"},
		{http.MethodPost, "/api/v1/messages/7", "GET, DELETE"},
		{http.MethodPut, "/api/v1/messages/7", "GET, DELETE"},
		{http.MethodGet, "/api/v1/messages/7/retry", "POST"},
		{http.MethodDelete, "/api/v1/messages/7/retry", "POST"},
		{http.MethodGet, "/api/v1/messages/retry-dead", "POST"},
		{http.MethodDelete, "/api/v1/messages/retry-dead", "POST"},
		{http.MethodPost, "/api/v1/queue", "GET"},
		{http.MethodDelete, "/api/v1/queue", "GET"},
	}
	for _, tt := range tests {
		w := f.do(tt.method, tt.path, "", loopback)
		msg := wantError(t, w, http.StatusMethodNotAllowed)
		if got := w.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
		if !strings.Contains(msg, strings.Split(tt.allow, ", ")[0]) {
			t.Errorf("%s %s: message %q does not name the allowed methods", tt.method, tt.path, msg)
		}
	}
}

func TestMessagesUnknownPath(t *testing.T) {
	f := serve("", &fakeOutgoing{})
	for _, path := range []string{"/api/v1/messages/", "/api/v1/messages/7/", "/api/v1/messages/7/x", "/api/v1/messages/7/retry/x",
		"/api/v1/messages/retry-dead/x", "/api/v1/queue/", "/api/v1/queue/x", "/api/v1/message"} {
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			msg := wantError(t, f.do(method, path, "", loopback), http.StatusNotFound)
			if !strings.Contains(msg, path) {
				t.Errorf("%s %s: message %q does not name the path", method, path, msg)
			}
		}
	}
}

// Other endpoints keep the small body limit.
func TestMessagesBodyLimitIsLocal(t *testing.T) {
	f := serve("", &fakeOutgoing{})
	body := `{"phone":"4915123456789"}` + strings.Repeat(" ", 70<<10)
	wantError(t, f.do(http.MethodPost, "/api/v1/pair/code", body, loopback), http.StatusRequestEntityTooLarge)
}

func FuzzPostMessage(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"to":"4915123456789","text":"hi"}`,
		`{"to":"4915123456789@s.whatsapp.net","text":"hi","idempotency_key":"k"}`,
		`{"to":"120363012345678901@g.us","text":"x"}`, `{"to":"4915123456789:1@s.whatsapp.net","text":"x"}`,
		`{"to":"@","text":"x"}`, `{"to":"a@b@c","text":"x"}`, `{"to":"4915123456789","text":"\u0000"}`,
		`{"to":"4915123456789","text":"\ud800"}`, `{"to":"4915123456789","text":" "}`,
		`{"to":"4915123456789","text":"hi","x":1}`, `{"to":"4915123456789","text":"a"}{}`,
		`{"to":"4915123456789","text":"a","idempotency_key":"\ud800"}`, `{"to":1,"text":2}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	q := newQueue(f, outgoing.Options{})
	fx := serve("", q)
	f.Fuzz(func(t *testing.T, body []byte) {
		w := fx.do(http.MethodPost, "/api/v1/messages", string(body), loopback)
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			t.Fatalf("body %q: status %d, response is not JSON: %q", body, w.Code, w.Body)
		}
		switch w.Code {
		case http.StatusAccepted, http.StatusOK:
			id, _ := m["id"].(float64)
			wa, _ := m["wa_id"].(string)
			if id <= 0 || wa == "" || m["created"] != (w.Code == http.StatusAccepted) {
				t.Fatalf("body %q: %d with %v", body, w.Code, m)
			}
			// Accepted means stored as sent: nothing was replaced by U+FFFD.
			if text, _ := m["text"].(string); w.Code == http.StatusAccepted && strings.ContainsRune(text, utf8.RuneError) &&
				!bytes.Contains(body, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
				t.Fatalf("body %q was repaired into text %q", body, text)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if s, _ := m["error"].(string); s == "" {
				t.Fatalf("body %q: %d without error: %v", body, w.Code, m)
			}
		case http.StatusServiceUnavailable:
			if s, _ := m["error"].(string); !strings.Contains(s, "backlog") || w.Header().Get("Retry-After") == "" {
				t.Fatalf("body %q: 503 that is not a full backlog: %v", body, m)
			}
		default:
			t.Fatalf("body %q: unexpected status %d: %q", body, w.Code, w.Body)
		}
	})
}

// TestMessageListIsBoundedInBytes: a page of long texts answers with a
// preview of each (the whole text is one GET away), without HTML escaping:
// 40 texts of 64 KiB of "<" were 15 MiB in one response buffer before
// (issue 13, case 7; 1,000 of them took a bot past 1 GiB).
func TestMessageListIsBoundedInBytes(t *testing.T) {
	f := newMsgFixture(t, outgoing.Options{MaxPending: 1000})
	long := strings.Repeat("<", outgoing.MaxTextBytes)
	var ids []int64
	for range 40 {
		m, _, err := f.q.Enqueue(context.Background(), outgoing.Request{To: number, Text: long})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	short := f.post(t, number, "short <b>")
	w := f.do(http.MethodGet, "/api/v1/messages?limit=1000", "", loopback)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %.200s", w.Code, w.Body.String())
	}
	if n := w.Body.Len(); n > 64<<10 {
		t.Errorf("a page of 41 messages is %d bytes; want a preview of each, under 64 KiB", n)
	}
	if strings.Contains(w.Body.String(), `\u003c`) {
		t.Error("the response escapes < as for HTML")
	}
	var page struct {
		Messages []outgoing.Message `json:"messages"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &page); err != nil || len(page.Messages) != 41 {
		t.Fatalf("page: %d messages, %v", len(page.Messages), err)
	}
	for _, m := range page.Messages {
		switch {
		case m.ID == short && (m.Text != "short <b>" || m.TextTruncated):
			t.Errorf("short text listed as %q (truncated %v)", m.Text, m.TextTruncated)
		case m.ID != short && (!m.TextTruncated || m.Text != long[:256]):
			t.Errorf("long text %d listed with %d bytes (truncated %v); want its first 256 characters", m.ID, len(m.Text), m.TextTruncated)
		}
	}
	if got := f.get(t, ids[0]); got.Text != long || got.TextTruncated {
		t.Errorf("GET by id gave %d bytes (truncated %v); want the whole text", len(got.Text), got.TextTruncated)
	}
}

// hangingOutgoing is a queue whose database never answers: every call waits
// for its context.
type hangingOutgoing struct{ fakeOutgoing }

func (o *hangingOutgoing) Enqueue(ctx context.Context, _ outgoing.Request) (outgoing.Message, bool, error) {
	<-ctx.Done()
	return outgoing.Message{}, false, fmt.Errorf("enqueue: %w", ctx.Err())
}

// TestRequestsAnswerWhenTheDatabaseHangs: a POST whose database never
// answers got no answer at all (issue 13, case 6); every request now has
// a deadline in the server, and this one ends in a 503 with Retry-After.
func TestRequestsAnswerWhenTheDatabaseHangs(t *testing.T) {
	f := &fixture{h: httpapi.New(httpapi.Options{Conn: &fakeConn{}, DB: &fakeDB{}, Metrics: metrics.New(),
		Outgoing: &hangingOutgoing{}, RequestTimeout: 100 * time.Millisecond})}
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		done <- f.do(http.MethodPost, "/api/v1/messages", `{"to":"4915123456789","text":"hi"}`, loopback)
	}()
	select {
	case w := <-done:
		wantError(t, w, http.StatusServiceUnavailable)
		if w.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the POST got no answer while the database hung")
	}
}
