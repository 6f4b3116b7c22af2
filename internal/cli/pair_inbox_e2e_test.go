package cli

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A contact's message that reaches the account while 'blacksky pair' holds
// the connection is stored like any other, before WhatsApp is told it
// arrived, and the bot answers it once it runs. Pair used to connect with a
// client of its own (no synchronous ack, no inbox): such a message was
// acknowledged and never stored (issue 16).
func TestMessageDuringPairingIsKept(t *testing.T) {
	const contact = "15550000002"
	sb := startSandbox(t, contact)
	env := botEnv(t, sb, "")
	env["PORT"] = "1" // pair serves no HTTP
	p := start(t, env, "pair", "--phone", "15550000001", "--timeout", "30s")
	code := pairingCode(t, p)
	if status := control(t, sb.url, "POST", "/control/phone/code", map[string]string{"code": code}, nil); status != http.StatusOK {
		t.Fatalf("entering code %q: %d", code, status)
	}
	// The device is linked: the message is for it, delivered to pair's
	// connection when it logs in.
	if status := control(t, sb.url, "POST", "/control/contacts/"+contact+"/send", map[string]string{"text": ".ping"}, nil); status != http.StatusOK {
		t.Fatalf("contact sends: %d", status)
	}
	if exit := p.wait(t, 30*time.Second); exit != 0 {
		t.Fatalf("pair exited %d", exit)
	}
	bot := start(t, restartEnv(env))
	waitFor(t, "the bot's answer to the .ping sent while pairing", func() bool {
		for _, m := range inbox(t, sb, contact) {
			if strings.Contains(strings.ToLower(m.Text), "pong") {
				return true
			}
		}
		return false
	}, bot)
}
