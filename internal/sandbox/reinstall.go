package sandbox

// A contact who reinstalls WhatsApp (or moves to a new phone without its
// keys) comes back with a new Signal identity, registration ID and
// prekeys. What WhatsApp does then, as whatsmeow and the contact's new
// install see it:
//
//   - The messages the server kept for the old install are never
//     delivered: WhatsApp drops the old device's queue (the sender keeps
//     what it saw: acked, no delivery receipt).
//   - Every device of the account is told with <notification
//     type="encrypt" from=contact><identity/></notification>, from the
//     contact's LID once it has one, as the server names it in
//     notifications. whatsmeow notification.go handleEncryptNotification
//     deletes the identities and sessions stored for from.User and emits
//     events.IdentityChange{JID: from, Timestamp: t}. Like every
//     notification it waits for a device that is offline until acked.
//   - whatsmeow's delete matches "user:%", the addresses of agent 0 (phone
//     numbers): a LID session, "user_1:N", survives it, and whatsmeow sends
//     to contacts by LID. The bot's next message is then sealed in the old
//     session (a pkmsg naming a one-time prekey of the old install while
//     the contact never answered), which the new install cannot read; the
//     contact answers it, as WhatsApp's apps do, with a retry receipt
//     carrying its new keys (decryptCopy, askAgain), and the bot's resend
//     under the same ID, in a session with the new identity, is delivered.
//
// The contact's inbox and the record of what it sent stay: they are the
// test's view of what happened, not the reinstalled phone's history.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
)

// Reinstall gives the contact a fresh Signal identity and prekeys, drops
// the bot's messages the server kept for its old install and tells the
// account's devices of the identity change. It returns the IDs it dropped.
func (ct *Contact) Reinstall(ctx context.Context) ([]string, error) {
	s := ct.s
	ct.deliverMu.Lock()
	ct.cryptoMu.Lock()
	err := ct.dev.Delete(ctx)
	if err == nil {
		ct.dev, err = s.signal.device(ctx, ct.JID())
	}
	if err == nil {
		ct.copies = decryptedCopies{}
	}
	ct.cryptoMu.Unlock()
	var dropped []string
	if err == nil {
		ct.mu.Lock()
		for _, cp := range ct.kept {
			dropped = append(dropped, cp.id)
		}
		ct.kept, ct.heldReads, ct.retried = nil, nil, nil
		ct.mu.Unlock()
	}
	ct.deliverMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("reinstall contact %s: %w", ct.number, err)
	}
	for _, id := range dropped {
		s.emit(Event{Kind: EventUndeliverable, JID: ct.JID().String(), Detail: id + ": the recipient reinstalled"})
	}
	s.emit(Event{Kind: EventContactReinstalled, JID: ct.JID().String(), Detail: strings.Join(dropped, ",")})
	s.notifyIdentityChange(ct.Address())
	return dropped, nil
}

// notifyIdentityChange queues the identity change notification of from for
// every companion device of the account.
func (s *Server) notifyIdentityChange(from types.JID) {
	s.notifyLinked(func(id string) waBinary.Node {
		return waBinary.Node{Tag: "notification", Attrs: waBinary.Attrs{
			"from": from, "type": "encrypt", "id": id, "t": strconv.FormatInt(time.Now().Unix(), 10),
		}, Content: []waBinary.Node{{Tag: "identity"}}}
	})
}

// signalDevice is the contact's Signal store now (Reinstall replaces it).
func (ct *Contact) signalDevice() *store.Device {
	ct.cryptoMu.Lock()
	defer ct.cryptoMu.Unlock()
	return ct.dev
}
