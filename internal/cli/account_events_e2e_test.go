package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// eventHook is a webhook receiver that keeps the events whose kind starts
// with prefix, each event ID once, in the order they first arrived, and
// counts the deliveries of each.
type eventHook struct {
	prefix     string
	mu         sync.Mutex
	events     []hookEvent
	deliveries map[string]int // by event ID
	badSig     int
}

type hookEvent struct {
	ID, Type string
	Data     map[string]any
}

func (h *eventHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	if !webhook.Verify(botWebhookSecret, body, r.Header.Get("X-Blacksky-Signature")) {
		h.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var e hookEvent
	if err := json.Unmarshal(body, &e); err != nil || e.ID != r.Header.Get("X-Blacksky-Event-Id") {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	if !strings.HasPrefix(e.Type, h.prefix) {
		return
	}
	h.deliveries[e.ID]++
	if h.deliveries[e.ID] == 1 {
		h.events = append(h.events, e)
	}
}

func newEventHook(prefix string) *eventHook {
	return &eventHook{prefix: prefix, deliveries: map[string]int{}}
}

// since returns the events that first arrived after the first mark.
func (h *eventHook) since(mark int) []hookEvent {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookEvent(nil), h.events[mark:]...)
}

func (h *eventHook) mark() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.events)
}

// find is the index in evs of the first event of typ (and of state, for
// account.state) at or after from, or -1.
func find(evs []hookEvent, from int, typ, state string) int {
	for i := from; i < len(evs); i++ {
		if evs[i].Type == typ && (state == "" || evs[i].Data["state"] == state) {
			return i
		}
	}
	return -1
}

func describe(evs []hookEvent) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %s %v %v", e.Type, e.Data["state"], e.Data["reason"])
	}
	return b.String()
}

// An operator watching the webhook sees the account's life without polling:
// a fresh account's QR code (which pairs it), then paired, then connected,
// each once; a dropped connection and the reconnect; a logout from
// WhatsApp's side, and the QR code to pair again.
func TestAccountEventsEndToEnd(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			sb := startSandbox(t, "15550000002")
			hook := newEventHook("account.")
			hookSrv := httptest.NewServer(hook)
			defer hookSrv.Close()
			env := botEnv(t, sb, dbURL(t))
			env["WEBHOOK_URL"] = hookSrv.URL
			env["WEBHOOK_SECRET"] = botWebhookSecret
			bot := start(t, env)

			// Pair with the QR code from the webhook, not from /pair.
			var qr string
			waitFor(t, "an account.qr event", func() bool {
				evs := hook.since(0)
				if i := find(evs, 0, webhook.KindAccountQR, ""); i >= 0 {
					qr, _ = evs[i].Data["qr"].(string)
				}
				return qr != ""
			}, bot)
			if code := control(t, sb.url, "POST", "/control/phone/scan", map[string]string{"qr": qr}, nil); code != http.StatusOK {
				t.Fatalf("scan the webhook's QR code: %d", code)
			}
			bot.waitHTTP(t, "/readyz", http.StatusOK)
			var evs []hookEvent
			waitFor(t, "account.state connected", func() bool {
				evs = hook.since(0)
				return find(evs, 0, webhook.KindAccountState, "connected") >= 0
			}, bot)
			iQR, iPaired, iConnected := find(evs, 0, webhook.KindAccountQR, ""), find(evs, 0, webhook.KindAccountPaired, ""),
				find(evs, 0, webhook.KindAccountState, "connected")
			if !(iQR < iPaired && iPaired < iConnected) {
				t.Errorf("want account.qr, account.paired, then connected; got%s", describe(evs))
			}
			paired := evs[iPaired].Data["account"]
			if s, _ := paired.(string); !strings.HasSuffix(s, "@s.whatsapp.net") {
				t.Errorf("account.paired names account %v", paired)
			}
			for _, typ := range []string{webhook.KindAccountQR, webhook.KindAccountPaired} {
				if n := count(evs, typ, ""); n != 1 {
					t.Errorf("%d %s events, want 1:%s", n, typ, describe(evs))
				}
			}

			// A drop: the redial and connected again.
			mark := hook.mark()
			if n := count(hook.since(0), webhook.KindAccountState, "connected"); n != 1 {
				t.Errorf("%d account.state connected events after pairing, want 1:%s", n, describe(hook.since(0)))
			}
			control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "drop"}, nil)
			waitFor(t, "a redial, then connected again", func() bool {
				evs = hook.since(mark)
				i := find(evs, 0, webhook.KindAccountState, "connecting")
				return i >= 0 && find(evs, i, webhook.KindAccountState, "connected") > i
			}, bot)
			if r, _ := evs[find(evs, 0, webhook.KindAccountState, "connecting")].Data["reason"].(string); !strings.Contains(r, "connection closed") {
				t.Errorf("the redial's reason %q does not say the connection closed", r)
			}

			// Logged out by WhatsApp: said, then the pairing flow again.
			mark = hook.mark()
			control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "logout"}, nil)
			waitFor(t, "account.logged_out, then a new QR code", func() bool {
				evs = hook.since(mark)
				i := find(evs, 0, webhook.KindAccountLoggedOut, "")
				return i >= 0 && find(evs, i, webhook.KindAccountQR, "") > i
			}, bot)
			if find(evs, 0, webhook.KindAccountState, "logged_out") < 0 {
				t.Errorf("no account.state logged_out:%s", describe(evs))
			}
			if r, _ := evs[find(evs, 0, webhook.KindAccountLoggedOut, "")].Data["reason"].(string); r == "" {
				t.Error("account.logged_out without a reason")
			}

			t.Logf("account events:%s", describe(hook.since(0)))
			hook.mu.Lock()
			defer hook.mu.Unlock()
			if hook.badSig > 0 {
				t.Errorf("%d requests with a bad signature", hook.badSig)
			}
			for id, n := range hook.deliveries {
				if n != 1 {
					t.Errorf("event %s delivered %d times to a receiver that accepted it", id, n)
				}
			}
		})
	}
}

// count is how many events of typ (and state) evs holds.
func count(evs []hookEvent, typ, state string) int {
	n := 0
	for i := find(evs, 0, typ, state); i >= 0; i = find(evs, i+1, typ, state) {
		n++
	}
	return n
}

// With PAIR_PHONE the webhook carries the pairing code and its phone, and
// the code it carries links the bot.
func TestAccountPairCodeEventPairs(t *testing.T) {
	sb := startSandbox(t, "15550000002")
	hook := newEventHook("account.")
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	env := botEnv(t, sb, "")
	env["WEBHOOK_URL"] = hookSrv.URL
	env["WEBHOOK_SECRET"] = botWebhookSecret
	env["PAIR_PHONE"] = "15550000001"
	bot := start(t, env)
	var e hookEvent
	waitFor(t, "an account.pair_code event", func() bool {
		evs := hook.since(0)
		i := find(evs, 0, webhook.KindAccountPairCode, "")
		if i >= 0 {
			e = evs[i]
		}
		return i >= 0
	}, bot)
	code, _ := e.Data["code"].(string)
	if e.Data["phone"] != "15550000001" || code == "" || strings.Contains(e.ID, code) {
		t.Fatalf("account.pair_code %s: %v; want the code (not in the ID) and the phone", e.ID, e.Data)
	}
	if status := control(t, sb.url, "POST", "/control/phone/code", map[string]string{"code": code}, nil); status != http.StatusOK {
		t.Fatalf("entering the webhook's code %q: %d", code, status)
	}
	waitFor(t, "account.paired, then connected", func() bool {
		evs := hook.since(0)
		i := find(evs, 0, webhook.KindAccountPaired, "")
		return i >= 0 && find(evs, i, webhook.KindAccountState, "connected") > i
	}, bot)
}
