package sandbox

// How a simulated contact's phone takes the bot's messages: online, it
// decrypts each as it comes and sends its delivery receipt; offline (its
// phone off or without network), the server still acks the bot's message,
// because it stores it for the recipient, and keeps it until the phone is
// back, which then decrypts what waited, in order, and sends the receipts.
// A message shows in the contact's inbox only once it is delivered.
// Settings are not persisted: a restarted sandbox's contacts start from
// the defaults, like its faults.

import (
	"errors"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
)

// NeverRead is ContactSettings.ReadAfter for a contact that reads only when told (Contact.Read).
const NeverRead time.Duration = -1

// ContactSettings is how a simulated contact's phone behaves. Change one
// field of Settings() rather than build one: the zero value is a phone
// offline, with read receipts off, that reads at once.
type ContactSettings struct {
	// Online is whether the contact's phone is connected (see above).
	Online bool
	// ReadReceipts is the contact's privacy setting: off, it reads the
	// bot's messages without telling the bot's account.
	ReadReceipts bool
	// ReadAfter is how long after delivery the contact reads a message by
	// itself; NeverRead (any negative value) for only when told.
	ReadAfter time.Duration
}

// defaultContactSettings is how a new contact behaves: online, read
// receipts on, reading by itself only if Options.ReadAfter says so.
func (s *Server) defaultContactSettings() ContactSettings {
	st := ContactSettings{Online: true, ReadReceipts: true, ReadAfter: NeverRead}
	if s.opts.ReadAfter > 0 {
		st.ReadAfter = s.opts.ReadAfter
	}
	return st
}

// Settings returns how the contact's phone behaves now.
func (ct *Contact) Settings() ContactSettings {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return ct.settings
}

// SetOnline turns the contact's phone on or off (ContactSettings.Online).
func (ct *Contact) SetOnline(online bool) {
	st := ct.Settings()
	st.Online = online
	ct.SetSettings(st)
}

// SetSettings changes how the contact's phone behaves and returns the new
// settings. A phone coming online decrypts the messages the server kept for
// it, in order, sends their delivery receipts (and schedules its reading of
// them), then the read receipts it held while offline.
func (ct *Contact) SetSettings(st ContactSettings) ContactSettings {
	if st.ReadAfter < 0 {
		st.ReadAfter = NeverRead
	}
	s := ct.s
	ct.deliverMu.Lock()
	ct.mu.Lock()
	wasOnline := ct.settings.Online
	ct.settings = st
	var kept []botCopy
	var reads []waBinary.Node
	if st.Online && !wasOnline {
		kept, reads = ct.kept, ct.heldReads
		ct.kept, ct.heldReads = nil, nil
	}
	ct.mu.Unlock()
	var got, again []botCopy
	for _, cp := range kept {
		_, ok, retry := s.decryptCopy(ct, cp)
		if ok {
			got = append(got, cp)
		}
		if retry {
			again = append(again, cp)
		}
	}
	ct.deliverMu.Unlock()
	for _, cp := range again {
		s.askAgain(ct, cp)
	}
	if st.Online != wasOnline {
		s.emit(Event{Kind: EventContactOnline, JID: ct.JID().String(), Detail: onlineDetail(st.Online)})
	}
	s.delivered(ct, got)
	for _, n := range reads {
		s.receiptToAccount(n)
	}
	return st
}

func onlineDetail(online bool) string {
	if online {
		return "online"
	}
	return "offline"
}

// Waiting lists the IDs of the bot's messages the server keeps for the
// contact while it is offline, oldest first.
func (ct *Contact) Waiting() []string {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	out := make([]string, 0, len(ct.kept))
	for _, cp := range ct.kept {
		out = append(out, cp.id)
	}
	return out
}

// botCopy is one copy of a bot message for a contact, as the server keeps
// it until the contact's phone takes it.
type botCopy struct {
	id     string
	sender types.JID // the bot device that sent it
	to     types.JID // the address the bot wrote to (PN or LID): receipts come from it
	enc    waBinary.Node
	connID uint64
}

// handOver gives the contact its copy if it is online. It reports whether
// the contact decrypted it and whether it must ask for it again (askAgain,
// after the server's ack); an offline contact's copy is kept for later.
func (s *Server) handOver(ct *Contact, cp botCopy) (ok, retry bool) {
	ct.deliverMu.Lock()
	defer ct.deliverMu.Unlock()
	ct.mu.Lock()
	online := ct.settings.Online
	if !online {
		ct.kept = append(ct.kept, cp)
	}
	ct.mu.Unlock()
	if !online {
		s.emit(Event{Kind: EventKeptForContact, ConnID: cp.connID, JID: ct.JID().String(), Detail: cp.id})
		return false, false
	}
	_, ok, retry = s.decryptCopy(ct, cp)
	return ok, retry
}

// decryptCopy lets the contact (or the phone) decrypt a copy into its inbox,
// recording why not when it cannot. A contact that cannot decrypt a message
// (it reinstalled: no session, or a prekey it no longer has) asks for it
// again as WhatsApp's apps do, once per message: retry is set for the
// caller to do so (askAgain). A duplicate copy it ignores.
func (s *Server) decryptCopy(ct *Contact, cp botCopy) (msg *waE2E.Message, ok, retry bool) {
	msg, err := ct.receive(s.ctx, cp.sender, cp.id, cp.to, cp.enc)
	switch {
	case errors.Is(err, errDuplicateCopy):
		s.emit(Event{Kind: EventDuplicateIgnored, ConnID: cp.connID, JID: ct.JID().String(), Detail: cp.id})
		return nil, false, false
	case err != nil:
		s.log.Warn("contact could not decrypt message", "contact", ct.number, "id", cp.id, "err", err)
		s.emit(Event{Kind: EventDecryptFailed, ConnID: cp.connID, JID: ct.JID().String(), Detail: cp.id + ": " + err.Error()})
		return nil, false, ct != s.phone && ct.firstRetry(cp.id)
	}
	return msg, true, false
}

// askAgain sends the retry receipt of a copy the contact could not
// decrypt, with its current keys, to the bot device that sent it.
func (s *Server) askAgain(ct *Contact, cp botCopy) {
	if err := ct.sendRetry(s.ctx, cp.sender, cp.id, false); err != nil {
		s.log.Warn("contact could not ask for a message again", "contact", ct.number, "id", cp.id, "err", err)
	}
}

// delivered sends the delivery receipts of copies a contact decrypted, one
// per message, and schedules its reading of them.
func (s *Server) delivered(ct *Contact, cps []botCopy) {
	ids := make([]string, 0, len(cps))
	for _, cp := range cps {
		s.receiptToAccount(receiptNode(cp.to, "", []string{cp.id}, time.Now()))
		ids = append(ids, cp.id)
	}
	ct.scheduleRead(ids)
}

// contactSettingsJSON is the control API's view of ContactSettings; in a
// PUT, a field left out keeps its value.
type contactSettingsJSON struct {
	Online       *bool `json:"online,omitempty"`
	ReadReceipts *bool `json:"read_receipts,omitempty"`
	// ReadAfterMS is ReadAfter in milliseconds; -1 for NeverRead.
	ReadAfterMS *int64 `json:"read_after_ms,omitempty"`
}

func settingsJSON(st ContactSettings) contactSettingsJSON {
	ms := st.ReadAfter.Milliseconds()
	if st.ReadAfter < 0 {
		ms = -1
	}
	return contactSettingsJSON{Online: &st.Online, ReadReceipts: &st.ReadReceipts, ReadAfterMS: &ms}
}

// apply changes st by the fields set; a read_after_ms below -1 is refused.
func (j contactSettingsJSON) apply(st ContactSettings) (ContactSettings, error) {
	if j.Online != nil {
		st.Online = *j.Online
	}
	if j.ReadReceipts != nil {
		st.ReadReceipts = *j.ReadReceipts
	}
	if j.ReadAfterMS != nil {
		switch ms := *j.ReadAfterMS; {
		case ms == -1:
			st.ReadAfter = NeverRead
		case ms < 0:
			return st, errBadRequest("read_after_ms must be -1 (never by itself) or a delay in milliseconds")
		default:
			st.ReadAfter = time.Duration(ms) * time.Millisecond
		}
	}
	return st, nil
}

// readRequest names the messages a contact reads; none for all unread.
type readRequest struct {
	IDs []string `json:"ids"`
}

// readResult lists the messages a contact read.
type readResult struct {
	IDs []string `json:"ids"`
}

// firstRetry reports whether the contact has not asked for message id again yet, and notes that it has now.
func (ct *Contact) firstRetry(id string) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.retried == nil {
		ct.retried = make(map[string]bool)
	}
	if ct.retried[id] {
		return false
	}
	ct.retried[id] = true
	return true
}
