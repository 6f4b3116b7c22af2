package cli

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// botURL is the bot's HTTP API.
func botURL(bot *process) string { return fmt.Sprintf("http://127.0.0.1:%d", bot.port) }

// postMessage queues a message through the bot's API and returns it.
func postMessage(t *testing.T, bot *process, to, text string) map[string]any {
	t.Helper()
	var m map[string]any
	if code := control(t, botURL(bot), "POST", "/api/v1/messages", map[string]string{"to": to, "text": text}, &m); code != http.StatusAccepted {
		t.Fatalf("POST /api/v1/messages to %s: %d %v", to, code, m)
	}
	return m
}

// sentStates are the states of a message WhatsApp's server took: sent, and
// each step its recipient's receipts (or the watchdog) take it to.
var sentStates = map[string]bool{"sent": true, "undelivered": true, "delivered": true, "read": true, "played": true}

// wasSent reports whether the API's message m was taken by WhatsApp's server.
func wasSent(m map[string]any) bool { s, _ := m["state"].(string); return sentStates[s] }

func getMessage(t *testing.T, bot *process, id any) map[string]any {
	t.Helper()
	var m map[string]any
	control(t, botURL(bot), "GET", fmt.Sprintf("/api/v1/messages/%v", id), nil, &m)
	return m
}

// A contact is one chat whether a message names it by number, by phone JID
// or by LID (WhatsApp's second user ID, which current whatsmeow sends every
// direct message to): the messages arrive once, in order, and the contacts
// endpoint shows both addresses.
func TestRecipientsByNumberAndLID(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			contact := "15550000002"
			sb := startSandbox(t, contact)
			bot := start(t, botEnv(t, sb, dbURL(t)))
			pairThroughControlAPI(t, sb, bot)
			var ct struct{ LID string }
			control(t, sb.url, "GET", "/control/contacts/"+contact, nil, &ct)
			if !strings.HasSuffix(ct.LID, "@lid") {
				t.Fatalf("sandbox contact has LID %q", ct.LID)
			}

			first := postMessage(t, bot, contact, "1 by number")
			waitFor(t, "the first message", func() bool { return len(inbox(t, sb, contact)) == 1 }, bot, sb.process)
			byLID := postMessage(t, bot, ct.LID, "2 by LID")
			postMessage(t, bot, contact+"@s.whatsapp.net", "3 by phone JID")
			if byLID["to"] != first["to"] {
				t.Errorf("by LID the chat is %v, by number %v: one contact, two chats", byLID["to"], first["to"])
			}
			if got := getMessage(t, bot, first["id"]); got["to"] != contact+"@s.whatsapp.net" || got["to_lid"] != ct.LID {
				t.Errorf("GET /api/v1/messages/%v: to %v, to_lid %v; want both addresses", first["id"], got["to"], got["to_lid"])
			}
			want := map[string][]string{contact: {"1 by number", "2 by LID", "3 by phone JID"}}
			checkExactlyOnceInOrder(t, waitDelivered(t, sb, []string{contact}, want, bot), []string{contact}, want)

			var got map[string]any
			for _, path := range []string{contact, ct.LID} {
				if code := control(t, botURL(bot), "GET", "/api/v1/contacts/"+path, nil, &got); code != http.StatusOK {
					t.Fatalf("GET /api/v1/contacts/%s: %d %v", path, code, got)
				}
				if got["phone"] != contact || got["lid"] != ct.LID || got["on_whatsapp"] != true {
					t.Errorf("GET /api/v1/contacts/%s = %v; want phone %s, lid %s, on WhatsApp", path, got, contact, ct.LID)
				}
			}
			if code := control(t, botURL(bot), "GET", "/api/v1/contacts/not-a-number", nil, &got); code != http.StatusBadRequest || got["error"] == "" {
				t.Errorf("GET /api/v1/contacts/not-a-number: %d %v; want 400 with a reason", code, got)
			}
		})
	}
}

// A number without a WhatsApp account: WhatsApp would ack a message to it
// and deliver nothing. The bot asks once whether the number has an account,
// and every message to it goes to dead, "not on WhatsApp", after one attempt.
func TestMessagesToANumberWithoutWhatsAppAreDead(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			sb := startSandbox(t, "15550000002")
			bot := start(t, botEnv(t, sb, dbURL(t)))
			pairThroughControlAPI(t, sb, bot)
			const nobody = "15559990001"
			var ids []any
			for i := range 3 {
				ids = append(ids, postMessage(t, bot, nobody, fmt.Sprintf("hello %d", i))["id"])
			}
			for _, id := range ids {
				var m map[string]any
				waitFor(t, "the message to be dead", func() bool {
					m = getMessage(t, bot, id)
					return m["state"] == "dead"
				}, bot)
				if m["attempts"] != float64(1) || !strings.Contains(fmt.Sprint(m["last_error"]), "not on WhatsApp") {
					t.Errorf("message %v: %d attempts, last error %q; want 1 attempt, \"not on WhatsApp\"", id, m["attempts"], m["last_error"])
				}
			}
			var events []struct {
				Kind, JID, Detail string
			}
			control(t, sb.url, "GET", "/control/events", nil, &events)
			asked := 0
			for _, e := range events {
				if e.Kind == "user_queried" && e.JID == nobody+"@s.whatsapp.net" {
					asked++
				}
			}
			if asked != 1 {
				t.Errorf("WhatsApp was asked about %s %d times for 3 messages; want once", nobody, asked)
			}
			if n := len(inbox(t, sb, "15550000002")); n != 0 {
				t.Errorf("%d messages reached another contact", n)
			}
		})
	}
}

// A contact addressed by phone number (as every contact was before WhatsApp
// moved users to LIDs) writes to the bot; WhatsApp then moves it to its LID
// in the middle of the conversation. Current whatsmeow sends direct
// messages only by LID, so what the bot queued for the contact before the
// move (its reply to the contact's .ping, two notifications) waits, retried
// and never recorded sent, and arrives after it, in order, followed by what
// is queued later and the reply to a .ping from the LID: one chat across
// both addresses, with its idempotency keys.
func TestConversationAcrossALIDMigration(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			contact := "15550000002"
			sb := startSandboxWith(t, []string{"--phone-number-contacts"}, contact)
			env := botEnv(t, sb, dbURL(t))
			env["OUTGOING_MAX_ATTEMPTS"] = "1000"
			bot := start(t, env)
			pairThroughControlAPI(t, sb, bot)
			ping := func(from string) {
				t.Helper()
				if code := control(t, sb.url, "POST", "/control/contacts/"+contact+"/send", map[string]string{"text": ".ping"}, nil); code != http.StatusOK {
					t.Fatalf(".ping from the %s: %d", from, code)
				}
			}
			ping("number")
			var pong map[string]any
			waitFor(t, "the pong queued", func() bool {
				var list struct{ Messages []map[string]any }
				control(t, botURL(bot), "GET", "/api/v1/messages?to="+contact, nil, &list)
				if len(list.Messages) == 1 {
					pong = list.Messages[0]
				}
				return pong != nil
			}, bot)
			var first map[string]any
			for i := range 2 {
				var m map[string]any
				body := map[string]string{"to": contact, "text": fmt.Sprintf("queued %d", i), "idempotency_key": fmt.Sprintf("k%d", i)}
				if code := control(t, botURL(bot), "POST", "/api/v1/messages", body, &m); code != http.StatusAccepted {
					t.Fatalf("enqueue: %d %v", code, m)
				}
				if i == 0 {
					first = m
				}
			}
			// Without a LID nothing can go: the chat's first message is retried, not sent.
			waitFor(t, "a failed attempt", func() bool {
				m := getMessage(t, bot, pong["id"])
				return m["attempts"].(float64) >= 1 && m["state"] == "pending"
			}, bot)
			if n := len(inbox(t, sb, contact)); n != 0 {
				t.Fatalf("%d messages reached a contact without a LID", n)
			}

			var migrated struct{ LID string }
			if code := control(t, sb.url, "POST", "/control/contacts/"+contact+"/migrate", nil, &migrated); code != http.StatusOK || migrated.LID == "" {
				t.Fatalf("migrate: %d %+v", code, migrated)
			}
			// The idempotency key still names the message queued before the move.
			var again map[string]any
			control(t, botURL(bot), "POST", "/api/v1/messages", map[string]string{"to": migrated.LID, "text": "queued 0", "idempotency_key": "k0"}, &again)
			if again["id"] != first["id"] || again["created"] != false {
				t.Errorf("the idempotency key after the move gave %v; want message %v again", again, first["id"])
			}
			waitFor(t, "what was queued before the move", func() bool { return len(inbox(t, sb, contact)) >= 3 }, bot, sb.process)
			postMessage(t, bot, migrated.LID, "after the move")
			ping("LID")
			var texts []string
			waitFor(t, "every message at the contact", func() bool {
				texts = readInboxes(t, sb, []string{contact}).texts[contact]
				return len(texts) >= 5
			}, bot, sb.process)
			isPong := func(s string) bool { return strings.Contains(s, "Pong") }
			if len(texts) != 5 || !isPong(texts[0]) || texts[1] != "queued 0" || texts[2] != "queued 1" || texts[3] != "after the move" || !isPong(texts[4]) {
				t.Errorf("the contact received %q; want the pong, queued 0, queued 1, after the move, the pong, once each", texts)
			}
		})
	}
}
