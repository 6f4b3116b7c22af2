package httpapi

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// protect admits requests that carry API_TOKEN (as a bearer token or as the
// password of basic auth, which browsers can send to /pair); with no token
// configured it admits only requests from this machine.
func (a *api) protect(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Token == "" {
			if !fromLoopback(r) {
				writeError(w, http.StatusForbidden, "set API_TOKEN to use this endpoint from another machine")
				return
			}
			h(w, r)
			return
		}
		if !tokenMatches(presentedToken(r), a.Token) {
			w.Header().Set("WWW-Authenticate", `Basic realm="blacksky", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token: send Authorization: Bearer <API_TOKEN>")
			return
		}
		h(w, r)
	}
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
