package bot

import (
	"crypto/sha256"
	"encoding/hex"
)

// isOwner reports whether m's sender is one of the owners, by phone number
// (a LID sender is matched through its phone-number alternative).
func (b *Bot) isOwner(m Message) bool {
	p := m.SenderPhone()
	return p != "" && b.owners[p]
}

// messageEventID is the webhook event ID of an incoming message: the same
// for every handling of it.
func messageEventID(session string, m Message) string {
	h := sha256.Sum256([]byte("message.received\x00" + session + "\x00" + m.Chat + "\x00" + m.MsgID))
	return "msg_" + hex.EncodeToString(h[:16])
}
