package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 15: restarting the sandbox without --data (a new CA, a new noise
// root, no linked devices) wedged a running bot in an x509 loop until the
// bot was restarted. Now the bot reads the trust file the new sandbox wrote
// over the old one and,
// as against WhatsApp, takes the 401 the new sandbox gives the device it
// does not know as a logout: it reports that pairing is needed, shows a new
// QR code, and pairs with the new sandbox.
func TestBotSurvivesASandboxRestartedWithoutData(t *testing.T) {
	port := freePort(t)
	trust := filepath.Join(t.TempDir(), "trust.json")
	sb := startSandboxOn(t, port, trust, nil, "15550000002")
	bot := start(t, botEnv(t, sb, ""))
	pairThroughControlAPI(t, sb, bot)
	before := bot.status(t)["account"]

	sb.signal(t, syscall.SIGTERM)
	if code := sb.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("sandbox exit code %d after SIGTERM", code)
	}
	fresh := startSandboxOn(t, port, trust, nil, "15550000002")

	// The state and the account are two fields /status reads at once, but
	// the supervisor may set the state before it forgets the account; wait
	// for both rather than read the second after the first.
	waitFor(t, fmt.Sprintf("the bot to report that pairing is needed and name no account (was %v)", before), func() bool {
		st := bot.status(t)
		return (st["state"] == "unpaired" || st["state"] == "logged_out") && st["account"] == nil
	}, bot, fresh.process)
	out := bot.Output()
	if !strings.Contains(out, "logged this device out") {
		t.Errorf("the log does not say the device was logged out:\n%s", out)
	}
	if n := strings.Count(out, "x509"); n > 3 {
		t.Errorf("the log has %d x509 errors: the bot kept the old sandbox's trust", n)
	}
	// The bot reached the new sandbox (it trusts it), which refused the
	// device it does not know: the logout came from the server.
	var evs []struct{ Kind, Detail string }
	control(t, fresh.url, "GET", "/control/events?since=0", nil, &evs)
	rejected := false
	for _, e := range evs {
		rejected = rejected || (e.Kind == "login_rejected" && e.Detail == "unknown device")
	}
	if !rejected {
		t.Errorf("the new sandbox never refused the old device's login; events: %+v", evs)
	}

	pairThroughControlAPI(t, fresh, bot)
}

// status reads the bot's /status.
func (p *process) status(t *testing.T) map[string]any {
	t.Helper()
	var st map[string]any
	control(t, fmt.Sprintf("http://127.0.0.1:%d", p.port), "GET", "/status", nil, &st)
	return st
}
