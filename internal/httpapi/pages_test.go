package httpapi_test

import (
	"encoding/json"
	"html"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/httpapi"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// Heroku's "Open app" lands on /: a visitor without a token sees the bot's
// name, its state in words and where to go, and nothing that identifies the
// account, the machine or the session.
func TestLandingPageSaysStateAndLeaksNothing(t *testing.T) {
	const (
		session = "sess-7f3a"
		holder  = "worker-host-9/pid-4242"
		reason  = "connect: dial tcp: lookup db.internal.example: no such host"
	)
	hostname, _ := os.Hostname()
	tests := []struct {
		state   supervisor.State
		account string
		want    string
		pairing bool // the page sends the visitor to /pair
	}{
		{supervisor.Connected, account, "Connected to WhatsApp", false},
		{supervisor.Unpaired, "", "Pairing needed", true},
		{supervisor.LoggedOut, "", "pairing needed", true},
		{supervisor.Reconnecting, "", "Not linked yet", true},
		{supervisor.Reconnecting, account, "Reconnecting to WhatsApp", false},
		{supervisor.Standby, "", "Standby", false},
		{supervisor.Banned, account, "banned", false},
	}
	for _, tt := range tests {
		t.Run(string(tt.state)+"/"+tt.account, func(t *testing.T) {
			conn := &fakeConn{
				status:  supervisor.Status{State: tt.state, Reason: reason, Account: tt.account, Holder: holder},
				pairing: supervisor.Pairing{Paired: tt.account != "", Account: tt.account, QR: qrText, CodePhone: "4915123456789"},
			}
			f := &fixture{conn: conn, h: httpapi.New(httpapi.Options{
				Conn: conn, DB: &fakeDB{}, Metrics: metrics.New(), Token: token,
				BotName: "Shop & Co bot", Session: session, Version: "v9.9.9-secret", Started: time.Now(),
			})}
			w := f.do(http.MethodGet, "/", "", fromAddr("203.0.113.9:1234"), host("my-bot.herokuapp.com"))
			if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("GET /: %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
			}
			body := w.Body.String()
			text := html.UnescapeString(body)
			for _, want := range []string{"Shop & Co bot", tt.want, `name="viewport"`,
				`href="pair"`, `href="healthz"`, `href="readyz"`, `href="status"`} {
				if !strings.Contains(text, want) {
					t.Errorf("the landing page lacks %q:\n%s", want, body)
				}
			}
			if got := strings.Contains(body, `class="button" href="pair"`); got != tt.pairing {
				t.Errorf("link to pairing as the page's action: %v, want %v", got, tt.pairing)
			}
			leaks := []string{"4915123456789", session, holder, "db.internal.example", "v9.9.9", qrText, "my-bot.herokuapp.com"}
			if hostname != "" {
				leaks = append(leaks, hostname)
			}
			for _, secret := range leaks {
				if strings.Contains(text, secret) {
					t.Errorf("the landing page reveals %q to a visitor without a token", secret)
				}
			}
		})
	}
}

// Only / itself is the landing page: any other unknown path stays a JSON
// 404 (TestUnknownPath), and / takes GET and HEAD only.
func TestLandingPageIsOnlyTheRoot(t *testing.T) {
	f := newFixture(t, token)
	if w := f.do(http.MethodHead, "/", "", fromAddr("203.0.113.9:1234")); w.Code != http.StatusOK {
		t.Errorf("HEAD /: %d", w.Code)
	}
	msg := wantError(t, f.do(http.MethodPost, "/", "", fromAddr("203.0.113.9:1234")), http.StatusMethodNotAllowed)
	if !strings.Contains(msg, "GET") {
		t.Errorf("POST /: %q does not say to use GET", msg)
	}
	if msg := wantError(t, f.do(http.MethodGet, "/index.html", ""), http.StatusNotFound); !strings.Contains(msg, "/index.html") {
		t.Errorf("GET /index.html: %q", msg)
	}
}

// external finds anything a page would load from another site: a src,
// a stylesheet link, a CSS url() or @import with a scheme.
var external = regexp.MustCompile(`(?i)(src\s*=\s*["']?\s*(https?:)?//|<link[^>]+href\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|@import)`)

// The pairing page works on a phone and loads nothing from elsewhere; it
// updates itself from /api/v1/pair instead of reloading (a reload every 5 s
// made the QR code flicker), and it starts from the current state.
func TestPairPageIsSelfContainedAndForPhones(t *testing.T) {
	f := newFixture(t, "")
	f.conn.status = supervisor.Status{State: supervisor.Unpaired}
	f.conn.pairing = supervisor.Pairing{QR: qrText, QRExpires: time.Now().Add(15 * time.Second)}
	w := f.do(http.MethodGet, "/pair", "", loopback)
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("status %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	if !strings.Contains(body, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
		t.Error("no viewport meta tag: phones show the page zoomed out")
	}
	outsideNoscript := regexp.MustCompile(`(?s)<noscript>.*?</noscript>`).ReplaceAllString(body, "")
	if strings.Contains(strings.ToLower(outsideNoscript), "http-equiv=\"refresh\"") {
		t.Error("the page reloads itself (meta refresh outside <noscript>)")
	}
	if m := external.FindString(body); m != "" {
		t.Errorf("the page loads something from elsewhere: %q", m)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q: want nothing from elsewhere and no framing", csp)
	}
	for _, want := range []string{`fetch("api/v1/pair"`, `fetch("api/v1/pair/code"`, `id="codeform"`, `type="tel"`, `id="countdown"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	initial := initialState(t, body)
	if initial["qr"] != qrText || initial["state"] != "unpaired" {
		t.Errorf("initial state %v; want the current QR code and state", initial)
	}
	if left, _ := initial["qr_expires_in"].(float64); left <= 10 || left > 15 {
		t.Errorf("initial qr_expires_in %v; want about 15", initial["qr_expires_in"])
	}

	f.conn.status = supervisor.Status{State: supervisor.Connected, Account: account}
	f.conn.pairing = supervisor.Pairing{Paired: true, Account: "<script>alert(1)</script>"}
	body = f.do(http.MethodGet, "/pair", "", loopback).Body.String()
	if strings.Contains(body, "<script>alert") {
		t.Errorf("page does not escape the account name: %s", body)
	}
	if initial := initialState(t, body); initial["paired"] != true || initial["account"] != "<script>alert(1)</script>" {
		t.Errorf("paired initial state %v", initial)
	}
}

// initialState parses the state the pairing page starts from.
func initialState(t *testing.T, body string) map[string]any {
	t.Helper()
	m := regexp.MustCompile(`(?s)<script id="initial" type="application/json">(.*?)</script>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no initial state in the page:\n%s", body)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(m[1]), &v); err != nil {
		t.Fatalf("initial state is not JSON: %v: %s", err, m[1])
	}
	return v
}

// /api/v1/pair says how long the current code has left in seconds (a
// phone's clock differs from the server's) and where the connection is.
func TestPairJSONCountdownAndState(t *testing.T) {
	f := newFixture(t, "")
	f.conn.status = supervisor.Status{State: supervisor.Unpaired, Reason: "waiting for the QR code to be scanned"}
	f.conn.pairing = supervisor.Pairing{QR: qrText, QRExpires: time.Now().Add(17 * time.Second)}
	m := decode(t, f.do(http.MethodGet, "/api/v1/pair", "", loopback))
	if left, _ := m["qr_expires_in"].(float64); left <= 15 || left > 17 {
		t.Errorf("qr_expires_in %v; want just under 17", m["qr_expires_in"])
	}
	if m["state"] != "unpaired" || !strings.Contains(m["state_text"].(string), "Pairing needed") || m["qr_expires"] == nil {
		t.Errorf("unpaired: %v", m)
	}
	f.conn.pairing.QRExpires = time.Now().Add(-time.Second)
	if m := decode(t, f.do(http.MethodGet, "/api/v1/pair", "", loopback)); m["qr_expires_in"] != 0.0 {
		t.Errorf("expired code: qr_expires_in %v, want 0", m["qr_expires_in"])
	}
	f.conn.status = supervisor.Status{State: supervisor.Connected, Account: account}
	f.conn.pairing = supervisor.Pairing{Paired: true, Account: account}
	m = decode(t, f.do(http.MethodGet, "/api/v1/pair", "", loopback))
	if _, ok := m["qr_expires_in"]; ok || m["state"] != "connected" || m["account"] != account {
		t.Errorf("paired: %v", m)
	}
}
