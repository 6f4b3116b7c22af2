package cli

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// sandboxVersions reads the sandbox's minimum and current client versions.
func sandboxVersions(t *testing.T, sb sandboxProc) (minimum, current string) {
	t.Helper()
	var v struct{ Minimum, Current string }
	if code := control(t, sb.url, "GET", "/control/version", nil, &v); code != http.StatusOK {
		t.Fatalf("GET /control/version: %d", code)
	}
	return v.Minimum, v.Current
}

// bump adds n to the last part of a version such as 2.3000.1012345678.
func bump(t *testing.T, version string, n int) string {
	t.Helper()
	i := strings.LastIndexByte(version, '.')
	rev, err := strconv.Atoi(version[i+1:])
	if err != nil {
		t.Fatalf("version %q: %v", version, err)
	}
	return fmt.Sprintf("%s.%d", version[:i], rev+n)
}

// loggedInWith reports whether the sandbox saw a login with version v.
func loggedInWith(t *testing.T, sb sandboxProc, v string) bool {
	var evs []struct{ Kind, Detail string }
	control(t, sb.url, "GET", "/control/events", nil, &evs)
	for _, e := range evs {
		if e.Kind == "login" && e.Detail == "version "+v {
			return true
		}
	}
	return false
}

// Issue 14, through WA_SANDBOX as in production through WhatsApp: WhatsApp
// raises its minimum past the bot's version, and the bot fetches WhatsApp
// Web's current version from where it dials (the sandbox's page), logs in
// with it and is ready again, without an alert.
func TestOutdatedVersionMovesToWhatsAppWebsCurrent(t *testing.T) {
	sb := startSandbox(t)
	bot := start(t, botEnv(t, sb, ""))
	pairThroughControlAPI(t, sb, bot)
	_, current := sandboxVersions(t, sb)
	next := bump(t, current, 1)
	if code := control(t, sb.url, "POST", "/control/version", map[string]string{"minimum": next}, nil); code != http.StatusOK {
		t.Fatalf("raise the minimum: %d", code)
	}
	control(t, sb.url, "POST", "/control/faults", map[string]string{"kind": "drop"}, nil)
	waitFor(t, "a login with WhatsApp Web's current version "+next, func() bool { return loggedInWith(t, sb, next) }, bot)
	bot.waitHTTP(t, "/readyz", http.StatusOK)
	if out := bot.Output(); !strings.Contains(out, "switching to WhatsApp Web's current version") {
		t.Error("the bot did not log the version change")
	}
	status := bot.waitHTTP(t, "/status", http.StatusOK)
	if alerts, _ := status["alerts"].([]any); len(alerts) != 0 {
		t.Errorf("owner alerted although the bot healed itself: %v", alerts)
	}
}

// WA_VERSION below what WhatsApp accepts: the pin is kept, the bot stops in
// outdated at its first connection and says that the pin is refused.
func TestRefusedPinnedVersionIsOutdated(t *testing.T) {
	sb := startSandbox(t)
	minimum, _ := sandboxVersions(t, sb)
	pin := bump(t, minimum, -1)
	env := botEnv(t, sb, "")
	env["WA_VERSION"] = pin
	bot := start(t, env)
	waitFor(t, "state outdated", func() bool {
		var st struct{ State string }
		control(t, fmt.Sprintf("http://127.0.0.1:%d", bot.port), "GET", "/status", nil, &st)
		return st.State == "outdated"
	}, bot)
	status := bot.waitHTTP(t, "/status", http.StatusOK)
	alerts, _ := status["alerts"].([]any)
	if len(alerts) != 1 || !strings.Contains(fmt.Sprint(alerts[0]), "WA_VERSION") || !strings.Contains(fmt.Sprint(alerts[0]), pin) {
		t.Errorf("alerts = %v; want one naming WA_VERSION=%s", alerts, pin)
	}
}
