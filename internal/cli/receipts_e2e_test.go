package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// contactSettings are a sandbox contact's phone settings (PUT /control/contacts/{number}/settings).
type contactSettings struct {
	Online       *bool `json:"online,omitempty"`
	ReadReceipts *bool `json:"read_receipts,omitempty"`
}

func setContact(t *testing.T, sb sandboxProc, number string, st contactSettings) {
	t.Helper()
	if code := control(t, sb.url, "PUT", "/control/contacts/"+number+"/settings", st, nil); code != http.StatusOK {
		t.Fatalf("settings of %s: %d", number, code)
	}
}

func yes() *bool { v := true; return &v }
func no() *bool  { v := false; return &v }

// waitMessageState waits until the bot's API shows message id in state.
func waitMessageState(t *testing.T, bot *process, id any, state string, procs ...*process) map[string]any {
	t.Helper()
	var m map[string]any
	waitFor(t, fmt.Sprintf("message %v %s", id, state), func() bool {
		m = getMessage(t, bot, id)
		return m["state"] == state
	}, append([]*process{bot}, procs...)...)
	return m
}

// kindsOf lists, in arrival order, the kinds of the message.* events for
// outgoing message id; each event ID is counted once (eventHook).
func (h *eventHook) kindsOf(id any) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		if fmt.Sprint(e.Data["id"]) == fmt.Sprint(id) {
			out = append(out, strings.TrimPrefix(e.Type, "message."))
		}
	}
	return out
}

// Every step of an outgoing message's life reaches the API and the
// webhook, once, from the recipient's receipts as WhatsApp sends them: a
// contact who reads (and one who reads with read receipts off), a phone
// that is off until after the sending process was restarted, and one that
// comes back with a new identity, for which the bot sends the message
// again under its ID. The watchdog flags the two phones that are off.
func TestReceiptsEndToEnd(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			reader, private, away, gone := "15550000002", "15550000003", "15550000004", "15550000005"
			sb := startSandbox(t, reader, private, away, gone)
			hook := newEventHook("message.")
			hookSrv := httptest.NewServer(hook)
			defer hookSrv.Close()
			env := botEnv(t, sb, dbURL(t))
			env["WEBHOOK_URL"], env["WEBHOOK_SECRET"] = hookSrv.URL, botWebhookSecret
			env["OUTGOING_DELIVERY_TIMEOUT"] = "3s"
			bot := start(t, env)
			pairThroughControlAPI(t, sb, bot)
			setContact(t, sb, private, contactSettings{ReadReceipts: no()})
			setContact(t, sb, away, contactSettings{Online: no()})
			setContact(t, sb, gone, contactSettings{Online: no()})

			toReader := postMessage(t, bot, reader, "for the reader")["id"]
			toPrivate := postMessage(t, bot, private, "for the private reader")["id"]
			toAway := postMessage(t, bot, away, "for a phone that is off")["id"]
			toGone := postMessage(t, bot, gone, "for a phone that will be replaced")["id"]
			waitMessageState(t, bot, toReader, "delivered", sb.process)
			waitMessageState(t, bot, toPrivate, "delivered", sb.process)
			// The private contact reads first: a read receipt from it
			// would reach the bot before the reader's.
			control(t, sb.url, "POST", "/control/contacts/"+private+"/read", nil, nil)
			control(t, sb.url, "POST", "/control/contacts/"+reader+"/read", nil, nil)
			read := waitMessageState(t, bot, toReader, "read", sb.process)
			if read["delivered_at"] == nil || read["read_at"] == nil {
				t.Errorf("a read message without its times: %v", read)
			}
			if m := getMessage(t, bot, toPrivate); m["state"] != "delivered" || m["read_at"] != nil {
				t.Errorf("read receipts off, but the message is %v (read at %v)", m["state"], m["read_at"])
			}
			var receipts struct {
				Receipts []map[string]any `json:"receipts"`
			}
			control(t, botURL(bot), "GET", fmt.Sprintf("/api/v1/messages/%v/receipts", toReader), nil, &receipts)
			if len(receipts.Receipts) != 2 || receipts.Receipts[0]["state"] != "delivered" || receipts.Receipts[1]["state"] != "read" {
				t.Errorf("receipts of the read message: %v", receipts.Receipts)
			}

			// The watchdog: nothing from the phones that are off.
			waitMessageState(t, bot, toAway, "undelivered", sb.process)
			waitMessageState(t, bot, toGone, "undelivered", sb.process)
			if metrics := get(t, bot, "/metrics"); !strings.Contains(metrics, `blacksky_outbox_messages{state="undelivered"} 2`) {
				t.Errorf("metrics do not count the two undelivered messages")
			}

			// The phone that was off comes back while the bot is down; its
			// receipt waits at the server for the next process.
			bot.signal(t, syscall.SIGTERM)
			bot.wait(t, 30*time.Second)
			setContact(t, sb, away, contactSettings{Online: yes()})
			bot = start(t, restartEnv(env))
			waitMessageState(t, bot, toAway, "delivered", sb.process)

			// The other phone is replaced: what the server kept for it is
			// gone with it, WhatsApp tells the bot the identity changed, and
			// the bot sends the message again, under its ID, to the new keys.
			id := getMessage(t, bot, toGone)["wa_id"]
			var reinstall struct {
				Dropped []string `json:"dropped"`
			}
			if code := control(t, sb.url, "POST", "/control/contacts/"+gone+"/reinstall", nil, &reinstall); code != http.StatusOK || !slices.Contains(reinstall.Dropped, fmt.Sprint(id)) {
				t.Fatalf("reinstall: %d, dropped %v; want %v among them", code, reinstall.Dropped, id)
			}
			setContact(t, sb, gone, contactSettings{Online: yes()})
			waitMessageState(t, bot, toGone, "delivered", sb.process)
			if in := inbox(t, sb, gone); len(in) != 1 || in[0].ID != id {
				t.Errorf("the replaced phone got %+v; want the message once, under %v", in, id)
			}

			waitFor(t, "the webhook events", func() bool { return len(hook.kindsOf(toGone)) >= 4 }, bot)
			for _, c := range []struct {
				id   any
				want []string
			}{
				{toReader, []string{"sent", "delivered", "read"}},
				{toPrivate, []string{"sent", "delivered"}},
				{toAway, []string{"sent", "undelivered", "delivered"}},
				{toGone, []string{"sent", "undelivered", "sent", "delivered"}},
			} {
				if got := hook.kindsOf(c.id); !slices.Equal(got, c.want) {
					t.Errorf("message %v: events %v, want %v", c.id, got, c.want)
				}
			}
			hook.mu.Lock()
			for id, n := range hook.deliveries {
				if n != 1 {
					t.Errorf("event %s delivered %d times", id, n)
				}
			}
			hook.mu.Unlock()
		})
	}
}
