package cli

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/testdb"
)

// Heroku wipes the disk on every restart: with PostgreSQL the session and
// the queue live in the database, so a fresh machine carries on.
func TestPostgresSessionSurvivesAWipedDisk(t *testing.T) {
	contacts := []string{"15550000002"}
	sb := startSandbox(t, contacts...)
	env := botEnv(t, sb, testdb.PostgresURL(t))
	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)
	bot.signal(t, syscall.SIGTERM)
	if code := bot.wait(t, 28*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	want := map[string][]string{}
	enqueue(t, env, contacts, "while-down", 5, want)
	if err := os.RemoveAll(env["DATA_DIR"]); err != nil {
		t.Fatal(err)
	}

	again := start(t, restartEnv(env))
	again.waitHTTP(t, "/readyz", http.StatusOK)
	if strings.Contains(again.Output(), "scan this QR code") {
		t.Error("the restarted bot asked to pair again")
	}
	d := waitDelivered(t, sb, contacts, want, again)
	checkExactlyOnceInOrder(t, d, contacts, want)
}

// On SIGTERM the holder disconnects, releases the account, and the standby
// is connected within a couple of seconds.
func TestSIGTERMHandsOverToStandby(t *testing.T) {
	sb := startSandbox(t)
	env := botEnv(t, sb, testdb.PostgresURL(t))
	first := start(t, env)
	pairThroughControlAPI(t, sb, first)
	second := start(t, restartEnv(env))
	waitFor(t, "the standby", func() bool {
		return strings.Contains(second.Output(), "hot standby")
	}, second)

	sent := time.Now()
	first.signal(t, syscall.SIGTERM)
	second.waitHTTP(t, "/readyz", http.StatusOK)
	took := time.Since(sent)
	t.Logf("standby connected %v after SIGTERM to the holder", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("hand-over took %v; want under 5 s", took)
	}
	if code := first.wait(t, 28*time.Second); code != 0 {
		t.Errorf("holder exit %d after SIGTERM", code)
	}
	if strings.Contains(first.Output(), "logged out") {
		t.Error("the holder logged out on shutdown")
	}
}

// 'blacksky pair --phone' prints a pairing code, the phone enters it, and
// the command exits once the device is linked and logged in.
func TestPairCommandWithPhoneCode(t *testing.T) {
	sb := startSandbox(t)
	env := botEnv(t, sb, "")
	env["PORT"] = "1" // pair serves no HTTP
	p := start(t, env, "pair", "--phone", "15550000001", "--timeout", "30s")
	code := pairingCode(t, p)
	if status := control(t, sb.url, "POST", "/control/phone/code", map[string]string{"code": code}, nil); status != http.StatusOK {
		t.Fatalf("entering code %q: %d", code, status)
	}
	if exit := p.wait(t, 30*time.Second); exit != 0 {
		t.Fatalf("pair exited %d", exit)
	}
	if !strings.Contains(p.Output(), "paired as 15550000001") {
		t.Errorf("pair did not say what it linked")
	}
	// The session is stored: a second pair has nothing to do.
	again := start(t, restartEnv(env), "pair")
	if exit := again.wait(t, 30*time.Second); exit != 0 || !strings.Contains(again.Output(), "already paired") {
		t.Errorf("second pair: exit %d, output %q", exit, again.Output())
	}
}

// A state that needs a human reaches the owner on WhatsApp through the
// durable queue, once the connection is back.
func TestOwnerAlertedOnWhatsApp(t *testing.T) {
	owner := "15550000009"
	sb := startSandbox(t, owner)
	env := botEnv(t, sb, "")
	env["OWNER_NUMBER"] = "+1 555 000 0009"
	bot := start(t, env)
	pairThroughControlAPI(t, sb, bot)
	control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "ban", "duration": "2s"}, nil)
	waitFor(t, "the ban alert at the owner", func() bool {
		for _, m := range inbox(t, sb, owner) {
			if strings.Contains(m.Text, "banned") {
				return true
			}
		}
		return false
	}, bot)
	var status map[string]any
	control(t, fmt.Sprintf("http://127.0.0.1:%d", bot.port), "GET", "/status", nil, &status)
	if alerts, _ := status["alerts"].([]any); len(alerts) == 0 {
		t.Error("/status shows no alert")
	}
}

// pairingCode waits for the pairing code 'blacksky pair --phone' prints.
func pairingCode(t *testing.T, p *process) string {
	t.Helper()
	var code string
	waitFor(t, "a pairing code", func() bool {
		out := p.Output()
		const marker = "Link with phone number, enter: "
		i := strings.Index(out, marker)
		if i < 0 {
			return false
		}
		code = strings.TrimSpace(strings.SplitN(out[i+len(marker):], "\n", 2)[0])
		return code != ""
	}, p)
	return code
}
