package cli

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// flakyWebhook fails its first fails deliveries, then records the rest.
type flakyWebhook struct {
	mu       sync.Mutex
	fails    int
	attempts map[string]int // by event ID
	received []string       // event kinds accepted
	badSig   int
}

func (f *flakyWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !webhook.Verify(botWebhookSecret, body, r.Header.Get("X-Blacksky-Signature")) {
		f.badSig++
	}
	f.attempts[r.Header.Get("X-Blacksky-Event-Id")]++
	if f.fails > 0 {
		f.fails--
		http.Error(w, "not today", http.StatusInternalServerError)
		return
	}
	f.received = append(f.received, r.Header.Get("X-Blacksky-Event"))
}

func (f *flakyWebhook) got(kind string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.received {
		if k == kind {
			return true
		}
	}
	return false
}

// mostAttempts is the most requests any one event ID has had.
func (f *flakyWebhook) mostAttempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	most := 0
	for _, n := range f.attempts {
		most = max(most, n)
	}
	return most
}

const botWebhookSecret = "webhook-secret-for-tests"

func repliesContaining(t *testing.T, sb sandboxProc, number, text string) int {
	n := 0
	seen := map[string]bool{}
	for _, m := range inbox(t, sb, number) {
		if strings.Contains(m.Text, text) && !seen[m.ID] {
			seen[m.ID] = true
			n++
		}
	}
	return n
}

// The built binary as a bot: commands from contacts, owner-only refusal,
// real figures for the owner, a webhook that fails several times, and a
// SIGKILL right after messages arrived.
func TestBotCommandsEndToEnd(t *testing.T) {
	owner, stranger := "15550000009", "15550000002"
	sb := startSandbox(t, owner, stranger)
	hook := &flakyWebhook{fails: 3, attempts: map[string]int{}}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()
	env := botEnv(t, sb, "")
	env["OWNER_NUMBER"] = owner
	env["WEBHOOK_URL"] = hookSrv.URL
	env["WEBHOOK_SECRET"] = botWebhookSecret
	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)

	say := func(from, text string) {
		t.Helper()
		if code := control(t, sb.url, "POST", "/control/contacts/"+from+"/send", map[string]string{"text": text}, nil); code != http.StatusOK {
			t.Fatalf("contact send: %d", code)
		}
	}
	say(stranger, ".ping")
	say(stranger, ".queue")
	say(owner, ".status")
	// The owner also gets the connected notice, which says "connected"
	// too: wait for the .status reply itself (it tells the uptime).
	waitFor(t, "the replies", func() bool {
		return repliesContaining(t, sb, stranger, "Pong") == 1 &&
			repliesContaining(t, sb, stranger, "only for the bot's owner") == 1 &&
			repliesContaining(t, sb, owner, "ptime") >= 1
	}, bot)
	var status string
	for _, m := range inbox(t, sb, owner) {
		if strings.Contains(strings.ToLower(m.Text), "uptime") {
			status = m.Text
		}
	}
	if status == "" || !strings.Contains(status, "pending") {
		t.Errorf("owner's .status reply lacks real figures: %q", status)
	}
	// The 3 failures may hit 3 different events; the wait is over when one
	// of them was tried again under its ID (and accepted: the failures are
	// used up by then).
	waitFor(t, "webhook events after 3 failed deliveries, one retried", func() bool {
		return hook.got("message.received") && hook.got("message.sent") && hook.mostAttempts() >= 2
	}, bot)
	hook.mu.Lock()
	bad := hook.badSig
	hook.mu.Unlock()
	if bad > 0 {
		t.Errorf("webhook: %d bad signatures", bad)
	}

	// Messages acknowledged (stored) but maybe not yet handled when the
	// process dies are handled after the restart, each exactly once.
	mark := len(inbox(t, sb, stranger))
	for range 5 {
		say(stranger, ".ping")
	}
	waitFor(t, "the bot to receipt the pings", func() bool {
		var receipts []struct{ ID string }
		control(t, sb.url, "GET", "/control/contacts/"+stranger+"/receipts", nil, &receipts)
		return len(receipts) >= 7 // 2 earlier messages + 5 pings
	}, bot)
	bot.signal(t, syscall.SIGKILL)
	bot.wait(t, 10*time.Second)
	restarted := start(t, restartEnv(env))
	waitFor(t, "a reply to every ping", func() bool {
		return repliesContaining(t, sb, stranger, "Pong") >= 6
	}, restarted)
	restarted.waitHTTP(t, "/readyz", http.StatusOK)
	if n := repliesContaining(t, sb, stranger, "Pong"); n != 6 {
		t.Errorf("%d pongs for 6 pings", n)
	}
	t.Logf("%d messages in the contact's inbox after the kill", len(inbox(t, sb, stranger))-mark)
}
