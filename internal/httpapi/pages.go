package httpapi

import (
	"embed"
	"html/template"
	"net/http"

	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// The pages are self-contained (inline CSS and JS, no fonts, images or
// scripts from elsewhere): a bot's pairing page must work where the
// machine, or the operator's phone, reaches nothing but the bot.
//
//go:embed pages/*.html
var pageFiles embed.FS

var pages = template.Must(template.ParseFS(pageFiles, "pages/*.html"))

// docsURL is where the pages point for documentation: a link, never an
// asset the page loads.
const docsURL = "https://github.com/blacksky-bot/blacksky#readme"

// landingPage is GET /: what a visitor who found the bot's address (Heroku's
// "Open app" button) sees without a token. It names the bot and its state
// in words and links to pairing and health, and nothing else: no account,
// phone number, host, session or reason, which may carry any of those.
func (a *api) landingPage(w http.ResponseWriter, r *http.Request) {
	text, pairingNeeded := stateText(a.Conn.Status())
	writePage(w, "landing.html", map[string]any{
		"Bot": a.BotName, "State": text, "PairingNeeded": pairingNeeded, "Docs": docsURL,
	})
}

// pairPage is GET /pair: the QR code with a countdown, a form for a
// pairing code, and after pairing the account and next steps. Its script
// polls /api/v1/pair (pairing.go) and swaps what changed, so the QR code
// never flickers and the page never reloads; it starts from the state
// rendered into it, so the first paint is already right.
func (a *api) pairPage(w http.ResponseWriter, r *http.Request) {
	writePage(w, "pair.html", map[string]any{
		"Bot": a.BotName, "Initial": a.pairState(), "TokenSet": a.Token != "", "Docs": docsURL,
	})
}

func writePage(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Everything the pages use is inline; nothing else may load, and no
	// other site may frame them (a framed pairing page could be clickjacked).
	w.Header().Set("Content-Security-Policy", "default-src 'none'; img-src 'self' blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		// The header is out; all that is left is to stop writing.
		return
	}
}

// stateText says in words where the connection is, for people, and whether
// the visitor should go and pair the bot. It never includes the state's
// reason: reasons carry error texts (host names, addresses).
func stateText(st supervisor.Status) (text string, pairingNeeded bool) {
	unlinked := st.Account == ""
	switch st.State {
	case supervisor.Connected:
		if st.Degraded != "" {
			return "Connected to WhatsApp; checking the new connection", false
		}
		return "Connected to WhatsApp", false
	case supervisor.Unpaired:
		return "Pairing needed: link this bot with WhatsApp", true
	case supervisor.LoggedOut:
		return "Logged out by WhatsApp: pairing needed", true
	case supervisor.Connecting:
		if unlinked {
			return "Not linked yet; connecting to WhatsApp", true
		}
		return "Connecting to WhatsApp", false
	case supervisor.Reconnecting:
		if unlinked {
			return "Not linked yet; WhatsApp cannot be reached, trying again", true
		}
		return "Reconnecting to WhatsApp", false
	case supervisor.Banned:
		return "Temporarily banned by WhatsApp; waiting for the ban to end", false
	case supervisor.Outdated:
		return "Stopped: WhatsApp refuses this version of blacksky", false
	case supervisor.Replaced:
		return "Another client took over this WhatsApp session; waiting before trying again", false
	case supervisor.Standby:
		return "Standby: another process drives this account", false
	case supervisor.Stopped:
		return "Stopped", false
	}
	return string(st.State), false
}
