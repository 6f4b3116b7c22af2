package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testdb"
)

// sandboxProc is a running blacksky-sandbox, its control URL and its trust file.
type sandboxProc struct {
	*process
	url   string
	trust string // the trust file it wrote, the bot's WA_SANDBOX_TRUST
}

func startSandbox(t *testing.T, contacts ...string) sandboxProc {
	t.Helper()
	return startSandboxWith(t, nil, contacts...)
}

// startSandboxWith is startSandbox with more flags for blacksky-sandbox.
func startSandboxWith(t *testing.T, flags []string, contacts ...string) sandboxProc {
	t.Helper()
	return startSandboxOn(t, freePort(t), filepath.Join(t.TempDir(), "trust.json"), flags, contacts...)
}

// startSandboxOn starts blacksky-sandbox on a given port, writing its trust
// to trust, so a test can start another one on the same address.
func startSandboxOn(t *testing.T, port int, trust string, flags []string, contacts ...string) sandboxProc {
	t.Helper()
	args := append([]string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--contacts", strings.Join(contacts, ","),
		"--trust-file", trust}, flags...)
	p := startProgram(t, bins.Sandbox, map[string]string{"PORT": "1"}, args...)
	// Printed once the control API serves and every contact exists (the API
	// answers before the contacts are added).
	if err := p.WaitOutput(20*time.Second, "WhatsApp sandbox listening on"); err != nil {
		t.Fatal(err)
	}
	return sandboxProc{p, fmt.Sprintf("http://127.0.0.1:%d", port), trust}
}

// botEnv is a bot's environment against sb, fast to retry and unthrottled.
func botEnv(t *testing.T, sb sandboxProc, databaseURL string) map[string]string {
	env := map[string]string{
		"DATA_DIR": t.TempDir(), "WA_SANDBOX": sb.url, "WA_SANDBOX_TRUST": sb.trust, "SESSION_ID": "e2e",
		"RECONNECT_BASE_DELAY": "100ms", "RECONNECT_MAX_DELAY": "1s", "RECONNECT_PROBE_INTERVAL": "100ms",
		"SEND_RATE_PER_MINUTE": "0", "SEND_CHAT_GAP": "0", "OUTGOING_RETRY_BASE_DELAY": "100ms",
		"OUTGOING_RETRY_MAX_DELAY": "1s", "OUTGOING_SEND_TIMEOUT": "2s", "LEASE_INTERVAL": "100ms",
	}
	if databaseURL != "" {
		env["DATABASE_URL"] = databaseURL
	}
	return env
}

// restartEnv copies env for another process on the same database.
func restartEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		if k != "PORT" {
			out[k] = v
		}
	}
	return out
}

func pairThroughControlAPI(t *testing.T, sb sandboxProc, bot *process) {
	t.Helper()
	var pair struct {
		QR string `json:"qr"`
	}
	waitFor(t, "a QR code on /api/v1/pair", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/pair", bot.port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&pair)
		return pair.QR != ""
	}, bot, sb.process)
	if code := control(t, sb.url, "POST", "/control/phone/scan", map[string]string{"qr": pair.QR}, nil); code != http.StatusOK {
		t.Fatalf("scan: %d", code)
	}
	bot.waitHTTP(t, "/readyz", http.StatusOK)
}

type inboxEntry struct {
	ID   string `json:"id"`
	Text string `json:"text"`
	Type string `json:"type"` // pkmsg when it started a new Signal session
}

func inbox(t *testing.T, sb sandboxProc, number string) []inboxEntry {
	var in []inboxEntry
	control(t, sb.url, "GET", "/control/contacts/"+number+"/inbox", nil, &in)
	return in
}

// delivery is what the contacts saw: per contact the texts in order of
// first arrival of each message ID, and what looks wrong.
type delivery struct {
	texts      map[string][]string
	duplicates int // the same message ID received again (WhatsApp shows it once)
	problems   []string
}

func readInboxes(t *testing.T, sb sandboxProc, contacts []string) delivery {
	d := delivery{texts: map[string][]string{}}
	for _, c := range contacts {
		seenID := map[string]string{}
		idOf := map[string]string{}
		for _, m := range inbox(t, sb, c) {
			if text, ok := seenID[m.ID]; ok {
				d.duplicates++
				if text != m.Text {
					d.problems = append(d.problems, fmt.Sprintf("%s: ID %s carried %q and %q", c, m.ID, text, m.Text))
				}
				continue
			}
			seenID[m.ID] = m.Text
			if other, ok := idOf[m.Text]; ok {
				d.problems = append(d.problems, fmt.Sprintf("%s: %q arrived twice, as %s and %s", c, m.Text, other, m.ID))
			}
			idOf[m.Text] = m.ID
			d.texts[c] = append(d.texts[c], m.Text)
		}
	}
	return d
}

// enqueue queues n messages round-robin over contacts through the CLI, as
// an operator's script would, and returns the texts per contact in order.
func enqueue(t *testing.T, env map[string]string, contacts []string, prefix string, n int, want map[string][]string) {
	t.Helper()
	for i := range n {
		c := contacts[i%len(contacts)]
		text := fmt.Sprintf("%s-%03d", prefix, i)
		if code, _, stderr := runCLI(t, env, "send", "--to", c, "--text", text); code != exitOK {
			t.Fatalf("send: exit %d: %s", code, stderr)
		}
		want[c] = append(want[c], text)
	}
}

func waitDelivered(t *testing.T, sb sandboxProc, contacts []string, want map[string][]string, procs ...*process) delivery {
	t.Helper()
	var d delivery
	waitFor(t, "every queued message at its contact", func() bool {
		d = readInboxes(t, sb, contacts)
		for _, c := range contacts {
			if len(d.texts[c]) < len(want[c]) {
				return false
			}
		}
		return true
	}, procs...)
	return d
}

func checkExactlyOnceInOrder(t *testing.T, d delivery, contacts []string, want map[string][]string) {
	t.Helper()
	for _, p := range d.problems {
		t.Error(p)
	}
	for _, c := range contacts {
		if !slices.Equal(d.texts[c], want[c]) {
			t.Errorf("contact %s received %v; want exactly %v in this order", c, d.texts[c], want[c])
		}
	}
}

// stores gives each store's DATABASE_URL for a test: SQLite in DATA_DIR, or a fresh PostgreSQL database.
func stores() map[string]func(*testing.T) string {
	return map[string]func(*testing.T) string{
		"sqlite":   func(*testing.T) string { return "" },
		"postgres": func(t *testing.T) string { return testdb.PostgresURL(t) },
	}
}

// Messages queued during an outage arrive after it, and a bot killed with
// SIGKILL mid-delivery finishes the job after a restart: each message once,
// in order per chat.
func TestQueueSurvivesOutageAndSIGKILL(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			contacts := []string{"15550000002", "15550000003", "15550000004"}
			sb := startSandbox(t, contacts...)
			env := botEnv(t, sb, dbURL(t))
			bot := start(t, env)
			pairThroughControlAPI(t, sb, bot)
			want := map[string][]string{}

			control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "down", "duration": "2s"}, nil)
			bot.waitHTTP(t, "/readyz", http.StatusServiceUnavailable)
			enqueue(t, env, contacts, "outage", 30, want)
			d := waitDelivered(t, sb, contacts, want, bot, sb.process)
			checkExactlyOnceInOrder(t, d, contacts, want)

			enqueue(t, env, contacts, "kill", 90, want)
			waitFor(t, "delivery under way", func() bool {
				n := 0
				for _, texts := range readInboxes(t, sb, contacts).texts {
					n += len(texts)
				}
				return n >= 40
			}, bot)
			bot.signal(t, syscall.SIGKILL)
			bot.wait(t, 10*time.Second)
			restarted := start(t, restartEnv(env))
			d = waitDelivered(t, sb, contacts, want, restarted, sb.process)
			checkExactlyOnceInOrder(t, d, contacts, want)
			t.Logf("%d messages delivered once each; %d resends under the same ID after the kill", 120, d.duplicates)
		})
	}
}

// Two bots on one PostgreSQL: one drives the account, the other waits; the
// holder is killed and the standby finishes delivery. Nothing is sent twice
// and the sandbox never sees two connections at once. A contact talking to
// the bot across the hand-over is understood by both bots and understands
// both: the standby starts from the Signal sessions the holder stored, not
// from anything either kept in memory (internal/signalcache).
func TestTwoBotsOnPostgresHandOver(t *testing.T) {
	contacts := []string{"15550000002", "15550000003"}
	const talker = "15550000004"
	sb := startSandbox(t, append(contacts, talker)...)
	ping := func(bot *process, pongs int) {
		t.Helper()
		if code := control(t, sb.url, "POST", "/control/contacts/"+talker+"/send", map[string]string{"text": ".ping"}, nil); code != http.StatusOK {
			t.Fatalf("contact send: %d", code)
		}
		waitFor(t, fmt.Sprintf("pong number %d", pongs), func() bool {
			return repliesContaining(t, sb, talker, "Pong") == pongs
		}, bot)
	}
	env := botEnv(t, sb, testdb.PostgresURL(t))
	first := start(t, env)
	pairThroughControlAPI(t, sb, first)
	second := start(t, restartEnv(env))
	ready := second.waitHTTP(t, "/readyz", http.StatusServiceUnavailable)
	waitFor(t, "the second bot to report standby", func() bool {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", second.port))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&ready)
		return ready["reason"] == "standby"
	}, second)

	want := map[string][]string{}
	enqueue(t, env, contacts, "handover", 60, want)
	ping(first, 1)
	waitFor(t, "delivery under way", func() bool {
		return len(readInboxes(t, sb, contacts).texts[contacts[0]]) >= 5
	}, first)
	first.signal(t, syscall.SIGKILL)
	second.waitHTTP(t, "/readyz", http.StatusOK)
	d := waitDelivered(t, sb, contacts, want, second)
	checkExactlyOnceInOrder(t, d, contacts, want)
	ping(second, 2)
	ping(second, 3)

	checkOneConnectionAtATime(t, sb)
}

// Acks withheld by the server make the send time out; the retry reuses the
// message ID, so the contact sees the message once.
func TestWithheldAckRetriesUnderTheSameID(t *testing.T) {
	contact := "15550000002"
	sb := startSandbox(t, contact)
	env := botEnv(t, sb, "")
	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)
	control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "withhold_acks"}, nil)
	want := map[string][]string{}
	enqueue(t, env, []string{contact}, "ack", 1, want)
	waitFor(t, "a resend of the unacknowledged message", func() bool {
		return len(inbox(t, sb, contact)) >= 2
	}, bot)
	control(t, sb.url, "DELETE", "/control/faults", nil, nil)
	// Receipts come from the recipient whatever the server does with its
	// acks: the copies delivered meanwhile were receipted, and the message
	// is delivered once its send is acknowledged.
	code, stdout, _ := runCLI(t, env, "queue", "list", "--state", "delivered")
	waitFor(t, "the message to be marked sent and delivered", func() bool {
		code, stdout, _ = runCLI(t, env, "queue", "list", "--state", "delivered")
		return code == exitOK && strings.Contains(stdout, "delivered")
	}, bot)
	d := readInboxes(t, sb, []string{contact})
	checkExactlyOnceInOrder(t, d, []string{contact}, want)
	if d.duplicates == 0 {
		t.Error("no resend was observed; the test did not exercise a retry")
	}
}

// A contact that lost its Signal session (a reinstall) asks, after the bot
// restarted, for a message again with a retry receipt. whatsmeow's copy of
// recent sends died with the old process; the bot answers from the queue's
// sent messages, under the same ID, so the contact is not left on "waiting
// for this message".
func TestRetryReceiptAnsweredAfterRestart(t *testing.T) {
	for name, dbURL := range stores() {
		t.Run(name, func(t *testing.T) {
			contact := "15550000002"
			sb := startSandbox(t, contact)
			env := botEnv(t, sb, dbURL(t))
			bot := start(t, env)
			pairThroughControlAPI(t, sb, bot)
			want := map[string][]string{}
			enqueue(t, env, []string{contact}, "retry", 1, want)
			waitDelivered(t, sb, []string{contact}, want, bot)
			first := inbox(t, sb, contact)[0]
			bot.signal(t, syscall.SIGTERM)
			bot.wait(t, 30*time.Second)

			restarted := start(t, restartEnv(env))
			restarted.waitHTTP(t, "/readyz", http.StatusOK)
			var res map[string]string
			if code := control(t, sb.url, "POST", "/control/contacts/"+contact+"/retry", map[string]string{"id": first.ID}, &res); code != http.StatusOK {
				t.Fatalf("retry request: %d %v", code, res)
			}
			waitFor(t, "the message again after the retry receipt", func() bool {
				return len(inbox(t, sb, contact)) >= 2
			}, restarted)
			if again := inbox(t, sb, contact)[1]; again.ID != first.ID || again.Text != first.Text || again.Type != "pkmsg" {
				t.Errorf("after the retry receipt the contact got %+v; want %s %q again, in a new session (pkmsg)", again, first.ID, first.Text)
			}
		})
	}
}
