package sandbox

// WhatsApp's reach-out time-lock (fault reachout_timelock). What the server
// does, from what whatsmeow parses and what users of it reported:
//
//   - A message from the account to a user who has not written to it is
//     refused: the message ack carries error="463" (whatsmeow send.go reads
//     the ack's "error" attribute into "server returned error 463") and
//     nobody receives the message. Messages to users who wrote keep going
//     (tulir/whatsmeow#1197, WhiskeySockets/Baileys#2441: "this block only
//     affects new conversations").
//   - The account's devices are told with <notification type="mex"> whose
//     <update op_name="NotificationUserReachoutTimelockUpdate"> holds the
//     JSON {"data":{"xwa2_notify_account_reachout_timelock":{...}}} with
//     is_active, time_enforcement_ends (Unix seconds as a string) and
//     enforcement_type (whatsmeow notification.go handleMexNotification,
//     types/events NotifyAccountReachoutTimelock; the op name and
//     RESTRICT_ALL_COMPANIONS are from a whatsmeow log quoted in #1197).
//     Like every notification it waits for a device that is offline and is
//     handed over at its next login, until the device acks it.
//   - Nothing shows that WhatsApp pushes the state again at each login (its
//     web client queries it at start instead, which whatsmeow does not do)
//     or that it says anything when the lock runs out: the sandbox does
//     neither, so a client must end its pause at the announced time. When
//     the lock is lifted early (ClearFaults), the devices get is_active
//     false, as the web client's handler of the same notification expects
//     for a lock cleared by the server (oxidezap/whatsapp-rust#572).
//
// "Wrote to the account" is what the sandbox saw in this run: a contact that
// sent the account a message (Contact.Send). The account's own phone is
// never locked out.

import (
	"encoding/json"
	"strconv"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// defaultReachoutLock is the lock's length when the fault names none: a
// time-lock always has an end.
const defaultReachoutLock = time.Hour

// reachoutOpName is the update's op_name in WhatsApp's notification.
const reachoutOpName = "NotificationUserReachoutTimelockUpdate"

// reachoutEnforcement is the enforcement_type seen on real accounts.
const reachoutEnforcement = "RESTRICT_ALL_COMPANIONS"

// reachoutRefusedCode is the message ack's error for a refused reach-out.
const reachoutRefusedCode = "463"

// startReachoutLock puts the lock in force and tells every linked device.
func (s *Server) startReachoutLock(f Fault) {
	if f.Duration == 0 {
		f.Duration = defaultReachoutLock
	}
	// WhatsApp announces the end in whole seconds; the lock ends exactly
	// then, so a client that waits for the announced end is not refused.
	until := time.Now().Add(f.Duration).Truncate(time.Second).Add(time.Second)
	s.mu.Lock()
	s.faults[FaultReachoutTimelock] = activeFault{Fault: f, until: until}
	s.notifyLocked()
	s.mu.Unlock()
	s.announceReachoutLock(true, until)
}

// liftReachoutLock tells every linked device the lock is over; ClearFaults
// calls it when it ends a lock early.
func (s *Server) liftReachoutLock() { s.announceReachoutLock(false, time.Time{}) }

// announceReachoutLock queues the notification for each linked device and
// sends it on their live connections; a device acks it (settled in
// handleNode), and one offline gets it at its next login.
func (s *Server) announceReachoutLock(active bool, ends time.Time) {
	s.notifyLinked(func(id string) waBinary.Node { return reachoutNotification(id, active, ends) })
	s.emit(Event{Kind: EventReachoutNotified, Detail: reachoutDetail(active, ends)})
}

// notifyLinked queues a notification, made by node for its ID, for every
// linked device of the account: sent on their live connections, handed to
// an offline one at its next login, until the device acks it.
func (s *Server) notifyLinked(node func(id string) waBinary.Node) {
	s.mu.Lock()
	devices := make([]uint16, 0, len(s.acct.Devices))
	for id := range s.acct.Devices {
		devices = append(devices, id)
	}
	s.mu.Unlock()
	for _, dev := range devices {
		id := newMessageID()
		s.deliver(dev, pendingMsg{id: id, node: node(id)})
	}
}

func reachoutDetail(active bool, ends time.Time) string {
	if !active {
		return "inactive"
	}
	return "active until " + ends.UTC().Format(time.RFC3339)
}

// reachoutNotification is the mex notification of the lock's state.
func reachoutNotification(id string, active bool, ends time.Time) waBinary.Node {
	state := map[string]any{"is_active": active}
	if active {
		state["enforcement_type"] = reachoutEnforcement
		state["time_enforcement_ends"] = strconv.FormatInt(ends.Unix(), 10)
	}
	body, _ := json.Marshal(map[string]any{"data": map[string]any{"xwa2_notify_account_reachout_timelock": state}})
	return waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
		"from": types.ServerJID, "type": "mex", "id": id, "t": strconv.FormatInt(time.Now().Unix(), 10),
	}, Content: []waBinary.Node{{Tag: "update", Attrs: waBinary.Attrs{"op_name": reachoutOpName}, Content: body}}}
}

// reachoutRefused reports whether the lock refuses a message to ct: it is
// in force and ct, not the account's phone, never wrote to the account.
func (s *Server) reachoutRefused(ct *Contact) bool {
	if ct == nil || ct == s.phone || !s.faultActive(FaultReachoutTimelock) {
		return false
	}
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return len(ct.sent) == 0
}

// settleNotification drops an acked notification from the device's queue.
func (s *Server) settleNotification(dev uint16, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.pending[dev][:0]
	for _, m := range s.pending[dev] {
		if m.id != id || m.node.Tag != "notification" {
			kept = append(kept, m)
		}
	}
	s.pending[dev] = kept
}

// refuseReachout answers a message the lock refuses: an ack with error 463,
// and no copy to anyone (not even the account's phone).
func (s *Server) refuseReachout(c *conn, id string, to types.JID) {
	s.emit(Event{Kind: EventReachoutRefused, ConnID: c.id, JID: to.String(), Detail: id})
	ack := waBinary.Node{Tag: "ack", Attrs: waBinary.Attrs{
		"class": "message", "id": id, "from": to, "t": strconv.FormatInt(time.Now().Unix(), 10),
		"error": reachoutRefusedCode,
	}}
	if s.holdAck(c, ack) {
		return
	}
	c.sendLogged(ack)
}
