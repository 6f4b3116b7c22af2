package sandbox

// Client versions.
//
// WhatsApp refuses a client older than the oldest version it accepts: it
// answers the client payload, a login's or a registration's, with
// <failure location=".." reason="405"/> and closes, and whatsmeow then
// dispatches events.ClientOutdated and does not reconnect
// (connectionevents.go handleConnectFailure; whatsmeow issues #941, #1040 show
// the node). The version compared is ClientPayload.UserAgent.AppVersion,
// which whatsmeow fills from store.GetWAVersion. Only logins are checked: a
// connection that logged in before the minimum rose stays up until it ends.
//
// WhatsApp Web's own page, https://web.whatsapp.com/, names the build it
// serves in its bootstrap data as "client_revision":N. whatsmeow's
// GetLatestVersion (update.go) fetches that page and takes version 2.3000.N
// from it, which is how a client learns what to move to; the sandbox serves
// the page on its TLS listener, so a client whose HTTP requests reach the
// sandbox (Trust.HTTPClient) finds it where whatsmeow looks.

import (
	"errors"
	"fmt"
	"net/http"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
)

// builtinVersion is the version of the whatsmeow the sandbox is built with,
// read before anyone could call store.SetWAVersion: by default the sandbox
// accepts and serves exactly that, so an unconfigured client logs in.
var builtinVersion = store.GetWAVersion()

// webRevisionPrefix is the part of a version WhatsApp Web's page does not
// name: GetLatestVersion reads only the revision and puts 2.3000 in front.
var webRevisionPrefix = [2]uint32{2, 3000}

// failureLocation is the location attribute of the sandbox's failures; WhatsApp names a data centre there ("frc", "lla").
const failureLocation = "sandbox"

// ClientVersions are the client versions the sandbox accepts and serves.
type ClientVersions struct {
	// Minimum is the oldest version a login may present; an older one gets failure 405.
	Minimum store.WAVersionContainer
	// Current is WhatsApp Web's current build, named by its page; never below Minimum.
	Current store.WAVersionContainer
}

// clientVersionsJSON is ClientVersions on the control API and in the state file.
type clientVersionsJSON struct {
	Minimum string `json:"minimum,omitempty"`
	Current string `json:"current,omitempty"`
}

func (v ClientVersions) wire() clientVersionsJSON {
	return clientVersionsJSON{Minimum: v.Minimum.String(), Current: v.Current.String()}
}

// parse reads the versions; an empty field stays zero.
func (j clientVersionsJSON) parse() (ClientVersions, error) {
	var v ClientVersions
	var err error
	if j.Minimum != "" {
		if v.Minimum, err = parseVersion(j.Minimum); err != nil {
			return v, fmt.Errorf("minimum: %w", err)
		}
	}
	if j.Current != "" {
		if v.Current, err = parseVersion(j.Current); err != nil {
			return v, fmt.Errorf("current: %w", err)
		}
	}
	return v, nil
}

// parseVersion reads "2.3000.1012345678". store.ParseVersion alone takes
// "-1" or a number past 2^32 and wraps it; a version that does not print
// back as written is refused instead.
func parseVersion(text string) (store.WAVersionContainer, error) {
	v, err := store.ParseVersion(text)
	if err != nil || v.String() != text || v.IsZero() {
		return store.WAVersionContainer{}, fmt.Errorf("%q is not a version such as 2.3000.1012345678 (three dot-separated numbers below 2^32, not all zero)", text)
	}
	return v, nil
}

// defaultVersions is what a new sandbox accepts and serves.
func defaultVersions() ClientVersions {
	return ClientVersions{Minimum: builtinVersion, Current: builtinVersion}
}

// ClientVersions returns the versions the sandbox accepts and serves now.
func (s *Server) ClientVersions() ClientVersions {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versions
}

// SetClientVersions changes what the sandbox accepts and serves, as WhatsApp
// does when it retires old clients; a zero field keeps its value. A Minimum
// above Current moves Current up to it, because WhatsApp Web's own build is
// always one WhatsApp accepts; an explicit Current below Minimum is an error,
// and so is a Current that is not 2.3000.N (the page names only N). Open
// connections stay up; the next login is checked. The change is persisted
// with a data directory.
func (s *Server) SetClientVersions(v ClientVersions) (ClientVersions, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.versions
	if !v.Minimum.IsZero() {
		next.Minimum = v.Minimum
		if next.Current.LessThan(next.Minimum) {
			next.Current = next.Minimum
		}
	}
	if !v.Current.IsZero() {
		next.Current = v.Current
	}
	if next.Current.LessThan(next.Minimum) {
		return s.versions, fmt.Errorf("set client versions: current %s is below minimum %s", next.Current, next.Minimum)
	}
	if [2]uint32{next.Current[0], next.Current[1]} != webRevisionPrefix {
		return s.versions, fmt.Errorf("set client versions: current %s must be 2.3000.N: WhatsApp Web's page names only N", next.Current)
	}
	s.versions = next
	s.emitLocked(Event{Kind: EventClientVersions, Detail: fmt.Sprintf("minimum %s current %s", next.Minimum, next.Current)})
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist client versions", "err", err)
	}
	return next, nil
}

// loadVersions restores persisted versions, or the defaults when none are.
func loadVersions(j *clientVersionsJSON) (ClientVersions, error) {
	v := defaultVersions()
	if j == nil {
		return v, nil
	}
	saved, err := j.parse()
	if err != nil {
		return v, fmt.Errorf("load client versions: %w", err)
	}
	if saved.Minimum.IsZero() || saved.Current.IsZero() || saved.Current.LessThan(saved.Minimum) {
		return v, errors.New("load client versions: want a minimum and a current version, current not below minimum")
	}
	return saved, nil
}

// payloadVersion is the version a client payload presents.
func payloadVersion(p *waWa6.ClientPayload) store.WAVersionContainer {
	av := p.GetUserAgent().GetAppVersion()
	return store.WAVersionContainer{av.GetPrimary(), av.GetSecondary(), av.GetTertiary()}
}

// refuseOutdated answers a client payload older than the minimum, or any
// payload under FaultOutdated, with failure 405, and reports whether it did.
func (s *Server) refuseOutdated(c *conn, p *waWa6.ClientPayload) bool {
	v := payloadVersion(p)
	f, fault := s.activeFault(FaultOutdated)
	minimum := s.ClientVersions().Minimum
	if !fault && !v.LessThan(minimum) {
		return false
	}
	detail := "outdated"
	if !fault {
		detail = fmt.Sprintf("outdated: version %s is below the minimum %s", v, minimum)
	}
	e := Event{Kind: EventLoginRejected, ConnID: c.id, Detail: detail}
	if p.Username != nil {
		e.JID = types.JID{User: fmt.Sprint(p.GetUsername()), Server: types.DefaultUserServer, Device: uint16(p.GetDevice())}.String()
	}
	s.emit(e)
	c.sendFailure(405, waBinary.Attrs{"location": failureLocation}, f.ImmediateClose)
	return true
}

// webPage is the part of WhatsApp Web's page that matters to a client: the
// SiteData bootstrap module with the revisions of the build it serves.
const webPage = `<!DOCTYPE html>
<html lang="en" id="whatsapp-web"><head><meta charset="utf-8"><title>WhatsApp</title>
<script type="application/json" data-sjs>{"define":[["SiteData",[],{"server_revision":%d,"client_revision":%d,"push_phase":"C3","pr":1},317]]}</script>
</head><body><div id="app"></div></body></html>
`

// serveWebPage answers GET https://web.whatsapp.com/ with the page naming the current version.
func (s *Server) serveWebPage(w http.ResponseWriter, _ *http.Request) {
	v := s.ClientVersions().Current
	s.emit(Event{Kind: EventVersionPage, Detail: v.String()})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	fmt.Fprintf(w, webPage, v[2], v[2])
}

// webHandler serves what web.whatsapp.com serves on the TLS listener: the
// chat websocket and WhatsApp Web's page.
func (s *Server) webHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws/chat", s.handleWebsocket)
	mux.HandleFunc("GET /{$}", s.serveWebPage)
	mux.HandleFunc("/", http.NotFound)
	return mux
}
