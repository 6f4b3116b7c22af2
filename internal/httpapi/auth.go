package httpapi

import (
	"crypto/subtle"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// protect admits requests that carry API_TOKEN (as a bearer token or as the
// password of basic auth, which browsers can send to /pair); with no token
// configured it admits only requests from this machine that name this
// machine in their Host header.
//
// A web page the operator has open can make the browser send requests too:
// a form POST (text/plain, no preflight), an <img> with cached basic-auth
// credentials, or, through DNS rebinding, any request to a name that now
// resolves to 127.0.0.1. So, token or not: requests that change something
// must be JSON unless they carry a bearer token, which no browser adds by
// itself (a page cannot send JSON cross-site without a CORS preflight, which
// is never granted), requests from another site are refused except a
// top-level GET navigation, and without a token the Host must be loopback.
func (a *api) protect(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if why := crossSite(r); why != "" {
			writeError(w, http.StatusForbidden, why)
			return
		}
		if a.Token == "" {
			if !fromLoopback(r) {
				writeError(w, http.StatusForbidden, "set API_TOKEN to use "+r.URL.Path+" from another machine (without it, only this machine may)")
				return
			}
			if !loopbackHost(r.Host) {
				writeError(w, http.StatusForbidden, "the Host header names another machine than this one (a DNS rebinding page?); use localhost or 127.0.0.1, or set API_TOKEN")
				return
			}
		} else if !tokenMatches(presentedToken(r), a.Token) {
			w.Header().Set("WWW-Authenticate", `Basic realm="blacksky", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token: send Authorization: Bearer <API_TOKEN>")
			return
		}
		if changesState(r.Method) && !bearer(r) && !isJSON(r.Header.Get("Content-Type")) {
			writeError(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json (web pages cannot, which keeps them from driving the API)")
			return
		}
		h(w, r)
	}
}

// protectWithToken is protect when API_TOKEN is set, and nothing without
// one: for an endpoint that reveals nothing a stranger could use (/metrics),
// so scrapers on other machines keep working on a bot without a token.
func (a *api) protectWithToken(h http.HandlerFunc) http.HandlerFunc {
	if a.Token == "" {
		return h
	}
	return a.protect(h)
}

// crossSite says why a request comes from another site's page, or "".
// Browsers name the page's origin in Origin (on every POST) and, today, the
// relation in Sec-Fetch-Site; a top-level GET navigation (a link the
// operator clicks) is harmless and allowed.
func crossSite(r *http.Request) string {
	if !changesState(r.Method) && r.Header.Get("Sec-Fetch-Mode") == "navigate" {
		return ""
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return "cross-site request refused: open this address directly, or call the API from a script"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
		return "cross-site request refused: the Origin " + strconv.Quote(origin) + " is not this server"
	}
	return ""
}

// changesState reports whether a method may change something.
func changesState(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// loopbackHost reports whether a Host header names this machine.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer reports whether the request carries an Authorization: Bearer header.
func bearer(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	return len(h) > len("Bearer ") && strings.EqualFold(h[:len("Bearer ")], "Bearer ")
}

func presentedToken(r *http.Request) string {
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) > len(prefix) && strings.EqualFold(h[:len(prefix)], prefix) {
		return strings.TrimSpace(h[len(prefix):])
	}
	return ""
}

// tokenMatches compares in constant time so response timing reveals nothing
// about how much of a guessed token was right.
func tokenMatches(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// fromLoopback trusts only the socket's address: forwarding headers are set
// by whoever sends the request.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
