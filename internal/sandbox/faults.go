package sandbox

import (
	"errors"
	"fmt"
	"sort"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
)

// FaultKind names a failure the sandbox can inject.
type FaultKind string

// Fault kinds and what they do.
const (
	// FaultDrop closes every connection at once.
	FaultDrop FaultKind = "drop"
	// FaultRestart sends stream:error 515 (the client reconnects at once).
	FaultRestart FaultKind = "restart"
	// FaultStream503 sends stream:error 503, then closes.
	FaultStream503 FaultKind = "stream_503"
	// FaultReplaced sends stream:error conflict type=replaced, then closes.
	FaultReplaced FaultKind = "replaced"
	// FaultLogout forgets the linked devices and closes: the next connect gets failure 401.
	FaultLogout FaultKind = "logout"
	// FaultDeviceRemoved forgets the linked devices and sends stream:error 401 + conflict device_removed.
	FaultDeviceRemoved FaultKind = "device_removed"
	// FaultBan answers logins with failure 402 and an expiry for Duration (default 1h); current connections are dropped.
	FaultBan FaultKind = "ban"
	// FaultOutdated answers logins (and registrations) with failure 405
	// whatever their version, for Duration (default until cleared); current
	// connections are dropped. The version page still names the current
	// version: this is WhatsApp refusing even that one.
	FaultOutdated FaultKind = "outdated"
	// FaultRefuse answers websocket upgrades with HTTP 503 for Duration.
	FaultRefuse FaultKind = "refuse"
	// FaultBlackholePings leaves keep-alive pings unanswered for Duration.
	FaultBlackholePings FaultKind = "blackhole_pings"
	// FaultWithholdAcks holds message acks for Duration, then sends them;
	// until cleared without one. The recipients' receipts are not held: they
	// come from the recipient, not from the server's ack (receipts.go).
	FaultWithholdAcks FaultKind = "withhold_acks"
	// FaultDown closes everything and refuses TLS connections for Duration.
	FaultDown FaultKind = "down"
	// FaultKillOnLogin closes current connections, then every connection
	// right after its login succeeds, for Duration: a server that accepts
	// and at once kills.
	FaultKillOnLogin FaultKind = "kill_on_login"
	// FaultStuckSends leaves the connections open now as WhatsApp's side
	// of a stuck socket does: pings and queries are answered, but the bot's
	// messages are neither acked nor delivered. New connections are healthy.
	FaultStuckSends FaultKind = "stuck_sends"
	// FaultDeaf makes the connections open now push nothing to the bot:
	// pings, queries and acks of its messages are answered, but messages,
	// receipts and notifications are not sent on them. What waits for the
	// device's ack waits and is delivered on the next connection: messages
	// from contacts, contacts' receipts for the bot's messages, the
	// reach-out and identity change notifications. Pushes WhatsApp does not keep are lost: the
	// phone's own read receipts (PhoneReads), the prekey count, presence.
	// New connections are healthy.
	FaultDeaf FaultKind = "deaf"
	// FaultUndecryptable makes the next message a contact sends reach the bot's
	// devices undecryptable, and the contact ignore the bot's retry receipt
	// (undecryptable.go); the phone still answers the bot's request for it.
	FaultUndecryptable FaultKind = "undecryptable"
	// FaultReachoutTimelock is WhatsApp's reach-out lock for Duration (default 1h):
	// messages to contacts who never wrote to the account are refused with
	// error 463, and the devices are told of the lock and its end (reachout.go).
	FaultReachoutTimelock FaultKind = "reachout_timelock"
)

var allFaults = map[FaultKind]bool{
	FaultDrop: true, FaultRestart: true, FaultStream503: true, FaultReplaced: true, FaultLogout: true,
	FaultDeviceRemoved: true, FaultBan: true, FaultOutdated: true, FaultRefuse: true,
	FaultBlackholePings: true, FaultWithholdAcks: true, FaultDown: true,
	FaultKillOnLogin: true, FaultStuckSends: true, FaultDeaf: true,
	FaultUndecryptable:    true,
	FaultReachoutTimelock: true,
}

// Fault is one injection request.
type Fault struct {
	Kind FaultKind
	// Duration bounds lasting faults; zero means until ClearFaults (ban defaults to one hour).
	Duration time.Duration
	// ImmediateClose closes without the grace delay after the failure or stream error.
	ImmediateClose bool
}

type activeFault struct {
	Fault
	until time.Time
}

// ActiveFault describes a lasting fault in effect.
type ActiveFault struct {
	Kind  FaultKind `json:"kind"`
	Until time.Time `json:"until,omitzero"`
}

// ParseFaultKind validates a fault name.
func ParseFaultKind(s string) (FaultKind, error) {
	k := FaultKind(s)
	if !allFaults[k] {
		return "", fmt.Errorf("unknown fault kind %q", s)
	}
	return k, nil
}

func (s *Server) activeFault(k FaultKind) (activeFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.faults[k]
	if !ok {
		return activeFault{}, false
	}
	if !f.until.IsZero() && !time.Now().Before(f.until) {
		delete(s.faults, k)
		return activeFault{}, false
	}
	return f, true
}

func (s *Server) faultActive(k FaultKind) bool {
	_, ok := s.activeFault(k)
	return ok
}

// ActiveFaults lists the lasting faults currently in effect.
func (s *Server) ActiveFaults() []ActiveFault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ActiveFault
	for k, f := range s.faults {
		if f.until.IsZero() || time.Now().Before(f.until) {
			out = append(out, ActiveFault{Kind: k, Until: f.until})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// Inject applies a fault now; lasting kinds stay in effect for f.Duration.
func (s *Server) Inject(f Fault) error {
	if !allFaults[f.Kind] {
		return fmt.Errorf("inject fault: unknown kind %q", f.Kind)
	}
	if f.Duration < 0 {
		return errors.New("inject fault: negative duration")
	}
	s.mu.Lock()
	conns := s.connList()
	s.emitLocked(Event{Kind: EventFault, Detail: fmt.Sprintf("%s %s", f.Kind, f.Duration)})
	s.mu.Unlock()
	loggedIn := func() []*conn {
		var out []*conn
		for _, c := range conns {
			if _, ok := c.account(); ok {
				out = append(out, c)
			}
		}
		return out
	}
	switch f.Kind {
	case FaultDrop:
		for _, c := range conns {
			c.close("fault drop")
		}
	case FaultRestart:
		for _, c := range loggedIn() {
			c.sendStreamError("515", "", f.ImmediateClose)
		}
	case FaultStream503:
		for _, c := range loggedIn() {
			c.sendStreamError("503", "", f.ImmediateClose)
		}
	case FaultReplaced:
		for _, c := range loggedIn() {
			c.sendStreamError("", "replaced", f.ImmediateClose)
		}
	case FaultLogout:
		s.forgetDevices()
		for _, c := range loggedIn() {
			c.close("fault logout")
		}
	case FaultDeviceRemoved:
		s.forgetDevices()
		for _, c := range loggedIn() {
			c.sendStreamError("401", "device_removed", f.ImmediateClose)
		}
	case FaultBan:
		if f.Duration == 0 {
			f.Duration = time.Hour
		}
		s.setLasting(f)
		for _, c := range loggedIn() {
			c.close("fault ban")
		}
	case FaultOutdated:
		s.setLasting(f)
		for _, c := range loggedIn() {
			c.close("fault outdated")
		}
	case FaultDown:
		s.setLasting(f)
		for _, c := range conns {
			c.close("fault down")
		}
	case FaultKillOnLogin:
		s.setLasting(f)
		for _, c := range loggedIn() {
			c.close("fault kill_on_login")
		}
	case FaultRefuse, FaultBlackholePings:
		s.setLasting(f)
	case FaultStuckSends, FaultDeaf:
		for _, c := range loggedIn() {
			c.breakConn(f.Kind)
		}
	case FaultWithholdAcks:
		s.setLasting(f)
		if f.Duration > 0 {
			time.AfterFunc(f.Duration, s.releaseAcks)
		}
	case FaultUndecryptable:
		s.armUndecryptable()
	case FaultReachoutTimelock:
		s.startReachoutLock(f)
	}
	return nil
}

func (s *Server) setLasting(f Fault) {
	af := activeFault{Fault: f}
	if f.Duration > 0 {
		af.until = time.Now().Add(f.Duration)
	}
	s.mu.Lock()
	s.faults[f.Kind] = af
	s.notifyLocked()
	s.mu.Unlock()
}

// ClearFaults ends every lasting fault and releases withheld acks.
func (s *Server) ClearFaults() {
	lifted := s.faultActive(FaultReachoutTimelock)
	s.mu.Lock()
	s.faults = make(map[FaultKind]activeFault)
	s.undecryptableNext = false
	s.emitLocked(Event{Kind: EventFault, Detail: "cleared"})
	s.mu.Unlock()
	s.releaseAcks()
	if lifted {
		s.liftReachoutLock()
	}
}

// forgetDevices unlinks every companion of the account, as when the user logs out on the phone.
func (s *Server) forgetDevices() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.acct.Devices {
		s.emitLocked(Event{Kind: EventDeviceLoggedOut, JID: fmt.Sprintf("%s:%d@s.whatsapp.net", s.acct.Phone, id)})
	}
	s.acct.Devices = make(map[uint16]*deviceRec)
	s.pending = make(map[uint16][]pendingMsg)
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist logout", "err", err)
	}
}

// holdAck keeps a message ack back while withhold_acks is active; reports whether it did.
func (s *Server) holdAck(c *conn, ack waBinary.Node) bool {
	if !s.faultActive(FaultWithholdAcks) {
		return false
	}
	c.mu.Lock()
	c.heldAcks = append(c.heldAcks, ack)
	c.mu.Unlock()
	id, _ := ack.Attrs["id"].(string)
	s.emit(Event{Kind: EventAckWithheld, ConnID: c.id, JID: c.jidString(), Detail: id})
	return true
}

// releaseAcks sends the acks held on still-open connections once withholding ended.
func (s *Server) releaseAcks() {
	if s.faultActive(FaultWithholdAcks) {
		return
	}
	s.mu.Lock()
	conns := s.connList()
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		held := c.heldAcks
		c.heldAcks = nil
		c.mu.Unlock()
		for _, a := range held {
			c.sendLogged(a)
		}
	}
}
