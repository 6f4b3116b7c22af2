package sandbox

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
)

// WhatsApp tells a linked device nothing of its phone's presence; what the
// device sees of the phone is the phone's own traffic, stamped with when it
// happened. PhoneReads makes the phone do something a linked device sees
// at once: read a chat. (WhatsApp unlinks the devices of a phone that has
// been offline for about 14 days; a test of how a client tracks that makes
// the phone act with PhoneReads and ages what the client stored itself:
// there is no server message that says "the phone was last seen at T".)

// PhoneReads makes the account's phone open the chat with the contact and
// read its latest message: every connected device of the account gets the
// read receipt from the phone (from the account's number, device 0, with
// the contact as recipient, as whatsmeow parses a receipt of its own
// account). It returns the message ID; it fails when the contact is unknown,
// has sent the account nothing, or no device is connected.
func (s *Server) PhoneReads(number string) (string, error) {
	ct := s.Contact(number)
	if ct == nil {
		return "", errBadRequest("phone read: unknown contact")
	}
	sent := ct.Sent()
	if len(sent) == 0 {
		return "", fmt.Errorf("phone read: contact %s has sent the account nothing", ct.number)
	}
	id := sent[len(sent)-1].ID
	receipt := waBinary.Node{Tag: "receipt", Attrs: waBinary.Attrs{
		"id": id, "from": s.AccountJID(), "recipient": ct.Address(), "type": "read",
		"t": strconv.FormatInt(time.Now().Unix(), 10),
	}}
	s.mu.Lock()
	var conns []*conn
	for dev := range s.acct.Devices {
		conns = append(conns, s.liveConnsLocked(dev)...)
	}
	s.mu.Unlock()
	delivered := false
	for _, c := range conns {
		delivered = c.send(receipt) == nil || delivered
	}
	if !delivered {
		return "", errors.New("phone read: no device of the account is connected")
	}
	s.emit(Event{Kind: EventPhoneRead, JID: ct.JID().String(), Detail: id})
	return id, nil
}
