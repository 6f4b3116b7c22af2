package sandbox

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// LID addressing, as WhatsApp runs it since moving users to LIDs: a user has
// a phone-number JID and a LID; once a user is LID-addressed, the server
// delivers direct messages only to the LID. A message addressed to the
// phone number of such a user is still acknowledged, and reaches nobody:
// what whatsmeow#1027 reports of real WhatsApp for clients that keep
// sending by phone number (the whatsmeow of 2025-12 did, unless the account
// had a LID migration timestamp).

// ErrAlreadyLID is MigrateContact's answer for a contact that has its LID.
var ErrAlreadyLID = errors.New("the contact is LID-addressed already")

// MigrateContact moves a contact that is addressed by phone number
// (Options.PhoneNumberContacts, AddPhoneNumberContact) to its LID in the middle of a conversation,
// as WhatsApp did for every user: from now on it writes from its LID with
// its number as sender_pn, device and LID queries answer the LID, and
// messages to its number are acked and dropped. The bot's connected devices
// are told with a device notification that carries the LID (whatsmeow
// notification.go handleDeviceNotification stores the mapping from its lid
// attribute and drops its cached device list on <update/>).
func (s *Server) MigrateContact(number string) (*Contact, error) {
	number = strings.TrimPrefix(number, "+")
	s.mu.Lock()
	ct := s.contacts[number]
	switch {
	case ct == nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("migrate contact: no contact %s", number)
	case ct.lid != "":
		s.mu.Unlock()
		return ct, ErrAlreadyLID
	}
	s.giveLIDLocked(ct)
	lid := ct.lidLocked()
	if err := s.saveLocked(); err != nil {
		s.log.Error("persist contact migration", "err", err)
	}
	var targets []*conn
	for id := range s.acct.Devices {
		targets = append(targets, s.liveConnsLocked(id)...)
	}
	s.emitLocked(Event{Kind: EventContactMigrated, JID: lid.String(), Detail: ct.JID().String()})
	s.mu.Unlock()
	notif := waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
		"from": ct.JID(), "lid": lid, "type": "devices", "id": newMessageID(),
		"t": strconv.FormatInt(time.Now().Unix(), 10),
	}, Content: []waBinary.Node{{Tag: "update"}}}
	for _, c := range targets {
		c.sendLogged(notif)
	}
	return ct, nil
}

// droppedByAddress says why a copy of a bot message addressed to jid reaches
// no one, or "" when it is delivered: a LID-addressed contact gets nothing
// sent to its phone number.
func (s *Server) droppedByAddress(jid types.JID, ct *Contact) string {
	if ct == nil || jid.Server != types.DefaultUserServer || ct.LID().IsEmpty() {
		return "" // the account's phone has no LID of its own here
	}
	return "addressed to the phone number of a LID-addressed contact"
}
