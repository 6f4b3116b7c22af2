// Package supervisor owns the life of one WhatsApp account's connection: it
// connects, watches every way the connection can end, reconnects with capped
// exponential backoff and jitter, tells transient failures from fatal ones,
// drives pairing, and reports its state truthfully.
package supervisor

import (
	"time"
)

// State is where the account's connection is in its life.
type State string

// The states a connection can be in.
const (
	Unpaired     State = "unpaired"
	Connecting   State = "connecting"
	Connected    State = "connected"
	Reconnecting State = "reconnecting"
	LoggedOut    State = "logged_out"
	Banned       State = "banned"
	Outdated     State = "outdated"
	Replaced     State = "replaced"
	Stopped      State = "stopped"
	// Standby means another process holds the account's lease; this one
	// waits to take over.
	Standby State = "standby"
)

// AllStates lists every state, for metrics.
var AllStates = []State{Unpaired, Connecting, Connected, Reconnecting, LoggedOut, Banned, Outdated, Replaced, Stopped, Standby}

// Status is a snapshot of the supervisor for /status and /readyz.
type Status struct {
	State       State      `json:"state"`
	Reason      string     `json:"reason,omitempty"`
	Since       time.Time  `json:"since"`
	Attempt     int        `json:"attempt,omitempty"`
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	BanExpires  *time.Time `json:"ban_expires,omitempty"`
	Account     string     `json:"account,omitempty"` // the device JID once paired
	// Holder is the process that holds the account's lease (this one unless on standby).
	Holder string `json:"holder,omitempty"`
	// Degraded says why the connection is not trusted although it may be
	// up: the last one was ended as dead, and this one has not proved
	// itself yet (liveness.go).
	Degraded string `json:"degraded,omitempty"`
	// PhoneLastSeen is when the account's primary phone was last seen active
	// (phone.go); nil until it was.
	PhoneLastSeen *time.Time `json:"phone_last_seen,omitempty"`
}

// Pairing is what an operator needs to link the bot as a device.
type Pairing struct {
	Paired    bool      `json:"paired"`
	Account   string    `json:"account,omitempty"`
	QR        string    `json:"qr,omitempty"`
	QRExpires time.Time `json:"qr_expires,omitzero"`
	Code      string    `json:"pair_code,omitempty"`
	CodePhone string    `json:"pair_phone,omitempty"`
}

// Ready reports whether the account can send and receive now, and if not why.
func (s Status) Ready() (bool, string) {
	switch s.State {
	case Connected:
		if s.Degraded != "" {
			return false, s.Degraded
		}
		return true, ""
	case Unpaired, LoggedOut:
		return false, "not paired"
	case Connecting, Reconnecting:
		if s.Account == "" {
			return false, "not paired"
		}
		if s.Degraded != "" {
			return false, "connecting: " + s.Degraded
		}
		return false, "connecting"
	default:
		return false, string(s.State)
	}
}
