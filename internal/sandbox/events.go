package sandbox

import (
	"context"
	"fmt"
	"time"
)

// EventKind names something observable that happened in the sandbox.
type EventKind string

// Event kinds recorded by the sandbox.
const (
	EventConnOpened         EventKind = "conn_opened"         // websocket accepted
	EventConnClosed         EventKind = "conn_closed"         // connection ended (Detail: why)
	EventRefused            EventKind = "refused"             // connection refused by refuse/down
	EventPairRefs           EventKind = "pair_refs"           // QR refs sent to an unpaired client
	EventPairCodeRequest    EventKind = "pair_code_requested" // client asked for a phone code
	EventPaired             EventKind = "paired"              // device linked (before the 515)
	EventLogin              EventKind = "login"               // <success> sent (Detail: "version V", the client's)
	EventLoginRejected      EventKind = "login_rejected"      // <failure> sent at login (or 405 at registration)
	EventPing               EventKind = "ping"                // keep-alive answered
	EventPingDropped        EventKind = "ping_dropped"        // keep-alive black-holed
	EventPreKeysUploaded    EventKind = "prekeys_uploaded"    // Detail: number of keys
	EventPreKeyFetched      EventKind = "prekey_fetched"      // a client fetched the bundle of JID
	EventUnknownIQ          EventKind = "unknown_iq"          // answered with an error
	EventMessageFromBot     EventKind = "message_from_bot"    // Detail: message ID
	EventAckWithheld        EventKind = "ack_withheld"        // Detail: message ID
	EventMessageStuck       EventKind = "message_stuck"       // a stuck connection swallowed it (Detail: message ID)
	EventPushWithheld       EventKind = "push_withheld"       // a deaf connection did not send it (Detail: tag)
	EventMessageToBot       EventKind = "message_to_bot"      // a contact sent (Detail: ID)
	EventDelivered          EventKind = "delivered_to_bot"    // written to a bot connection
	EventReceipt            EventKind = "receipt"             // the bot sent a receipt
	EventRetryRequested     EventKind = "retry_requested"     // a contact asked the bot to resend (Detail: ID)
	EventClientAck          EventKind = "client_ack"          // the bot acked a node (Detail: class id)
	EventStreamError        EventKind = "stream_error"        // Detail: code/conflict
	EventFailure            EventKind = "failure"             // Detail: reason
	EventFault              EventKind = "fault"               // injected or cleared
	EventDecryptFailed      EventKind = "decrypt_failed"      // a contact could not decrypt
	EventDuplicateIgnored   EventKind = "duplicate_ignored"   // a contact got a copy it had decrypted already (Detail: ID)
	EventDeviceLoggedOut    EventKind = "device_logged_out"   // device unlinked
	EventContactAdded       EventKind = "contact_added"
	EventContactMigrated    EventKind = "contact_migrated"     // a contact moved to LID addressing (JID: its LID)
	EventUserQueried        EventKind = "user_queried"         // a usync named the user (JID; Detail: the protocols asked)
	EventOfflineDelivered   EventKind = "offline_delivered"    // end of backlog sent (Detail: count)
	EventAppStateKeyShared  EventKind = "app_state_key_shared" // the phone sent its app state key (Detail: message ID)
	EventAppStatePatch      EventKind = "app_state_patch"      // app state changed (Detail: "collection vN")
	EventPrivacyTokenIssued EventKind = "privacy_token_issued" // the bot issued a trusted-contact token (JID: recipient)
	EventEdgeRoutingSent    EventKind = "edge_routing_sent"    // routing info handed out (Detail: base64)
	EventEdgeRouted         EventKind = "edge_routed"          // a client connected with routing info (Detail: what it said)
	EventUndeliverable      EventKind = "undeliverable"        // acked, delivered to nobody (Detail: ID and why)
	EventClientVersions     EventKind = "client_versions"      // accepted/served versions changed (Detail: both)
	EventVersionPage        EventKind = "version_page"         // WhatsApp Web's page served (Detail: the version it named)
	EventUndecryptableSent  EventKind = "undecryptable_sent"   // a contact's message went out undecryptable (Detail: ID)
	EventPlaceholderResent  EventKind = "placeholder_resent"   // the phone answered a request for a message (Detail: its ID)
	EventPhoneRead          EventKind = "phone_read"           // the phone read a contact's chat (JID: contact; Detail: message ID)
	EventReachoutRefused    EventKind = "reachout_refused"     // a message to a new contact refused with 463 (JID: recipient; Detail: ID)
	EventReachoutNotified   EventKind = "reachout_notified"    // the devices were told of the reach-out lock (Detail: its state)
	// A contact's receipt for the bot's message written to a bot connection
	// (JID: the bot device; Detail: the IDs, comma-separated, then the type,
	// none for delivery: "3EB0A" or "3EB0A,3EB0B read"). Once per connection it goes out on.
	EventReceiptToBot EventKind = "receipt_to_bot"
	// The bot device acked a contact's receipt, which the server then forgets (JID, Detail as receipt_to_bot).
	EventReceiptAcked       EventKind = "receipt_acked"
	EventContactRead        EventKind = "contact_read"        // a contact read the bot's messages (JID: contact; Detail: the IDs, comma-separated), receipt or not
	EventContactOnline      EventKind = "contact_online"      // a contact's phone went online or offline (Detail: which)
	EventKeptForContact     EventKind = "kept_for_contact"    // the bot's message is acked and kept for an offline contact (JID: contact; Detail: ID)
	EventContactReinstalled EventKind = "contact_reinstalled" // a contact has a new Signal identity (Detail: the IDs of the kept messages it will never get)
)

// Event is one entry of the sandbox's observable history.
type Event struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Kind   EventKind `json:"kind"`
	ConnID uint64    `json:"conn_id,omitempty"`
	JID    string    `json:"jid,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

const maxEvents = 20000

func (s *Server) emit(e Event) {
	s.mu.Lock()
	s.emitLocked(e)
	s.mu.Unlock()
}

// emitLocked records e and wakes waiters; s.mu must be held.
func (s *Server) emitLocked(e Event) {
	s.eventSeq++
	e.Seq = s.eventSeq
	e.Time = time.Now()
	if len(s.events) >= maxEvents {
		s.events = append(s.events[:0:0], s.events[len(s.events)-maxEvents/2:]...)
	}
	s.events = append(s.events, e)
	s.log.Debug("sandbox event", "kind", e.Kind, "conn", e.ConnID, "jid", e.JID, "detail", e.Detail)
	s.notifyLocked()
}

func (s *Server) notify() {
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Events returns the recorded history, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// LastSeq is the sequence number of the latest event, for "what happened after" queries.
func (s *Server) LastSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventSeq
}

// CountEvents counts events of kind recorded after sequence number since.
func (s *Server) CountEvents(kind EventKind, since uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.events {
		if e.Seq > since && e.Kind == kind {
			n++
		}
	}
	return n
}

// WaitFor blocks until cond returns true (re-checked on every sandbox state change) or ctx ends.
// cond must not call WaitFor; it may call any other Server method.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("sandbox wait: %w", ctx.Err())
		}
	}
}

// WaitEvent waits for the first event of kind after sequence number since and returns it.
func (s *Server) WaitEvent(ctx context.Context, kind EventKind, since uint64) (Event, error) {
	var found Event
	err := s.WaitFor(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.events {
			if e.Seq > since && e.Kind == kind {
				found = e
				return true
			}
		}
		return false
	})
	if err != nil {
		return Event{}, fmt.Errorf("wait for %s: %w", kind, err)
	}
	return found, nil
}
