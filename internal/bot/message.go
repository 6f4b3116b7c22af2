package bot

import (
	"strings"
	"time"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// MessageState is where an incoming message is in its life.
type MessageState string

// The states of an incoming message.
const (
	Pending MessageState = "pending" // stored, not handled yet
	Handled MessageState = "handled" // handled; kept to recognise redeliveries
	Dead    MessageState = "dead"    // handling hit storage errors MaxAttempts times; kept until retried or purged
)

// Message is an incoming message as stored in the inbox.
type Message struct {
	ID         int64        `json:"-"`
	Chat       string       `json:"chat"`
	MsgID      string       `json:"id"`
	Sender     string       `json:"sender"`
	SenderAlt  string       `json:"sender_alt,omitempty"`
	PushName   string       `json:"push_name,omitempty"`
	IsGroup    bool         `json:"is_group"`
	FromMe     bool         `json:"from_me"`
	Kind       string       `json:"kind"`
	Text       string       `json:"text,omitempty"`
	SentAt     time.Time    `json:"timestamp"`
	ReceivedAt time.Time    `json:"received_at"`
	State      MessageState `json:"-"`
	Attempts   int          `json:"-"`
}

// SenderPhone is the sender's phone number (digits), taken from Sender, or
// from SenderAlt when Sender is a LID; empty when neither is a phone number.
func (m Message) SenderPhone() string {
	for _, s := range []string{m.Sender, m.SenderAlt} {
		if j, err := types.ParseJID(s); err == nil && j.Server == types.DefaultUserServer {
			return j.User
		}
	}
	return ""
}

// fromEvent turns a whatsmeow message into an inbox row; ok is false for
// what the bot does not keep (status updates, newsletters).
func fromEvent(e *events.Message, now time.Time) (Message, bool) {
	info := e.Info
	if info.Chat.Server == types.BroadcastServer || info.Chat.Server == types.NewsletterServer {
		return Message{}, false
	}
	kind, text := content(e.Message)
	if e.IsEdit {
		kind = "edit"
	}
	m := Message{
		Chat:       phoneChat(info).String(),
		MsgID:      clean(info.ID),
		Sender:     info.Sender.ToNonAD().String(),
		PushName:   clean(info.PushName),
		IsGroup:    info.IsGroup,
		FromMe:     info.IsFromMe,
		Kind:       kind,
		Text:       clean(text),
		SentAt:     info.Timestamp,
		ReceivedAt: now,
	}
	if !info.SenderAlt.IsEmpty() {
		m.SenderAlt = info.SenderAlt.ToNonAD().String()
	}
	if m.SentAt.IsZero() {
		m.SentAt = now
	}
	return m, m.MsgID != ""
}

// phoneChat is the chat of a message, named by the contact's phone number
// when WhatsApp addressed it by LID and gave the number beside it (sender_pn
// for a message from the contact, the recipient's number for one our phone
// sent): a contact is one chat, in the inbox as in the outgoing queue, however its
// messages are addressed and across its move to a LID.
func phoneChat(info types.MessageInfo) types.JID {
	chat := info.Chat.ToNonAD()
	if chat.Server != types.HiddenUserServer {
		return chat
	}
	alt := info.SenderAlt
	if info.IsFromMe {
		alt = info.RecipientAlt
	}
	if alt.Server == types.DefaultUserServer {
		return alt.ToNonAD()
	}
	return chat
}

// content names the message's kind and extracts its text or caption.
func content(m *waE2E.Message) (kind, text string) {
	switch {
	case m == nil:
		return "unknown", ""
	case m.Conversation != nil:
		return "text", m.GetConversation()
	case m.ExtendedTextMessage != nil:
		return "text", m.GetExtendedTextMessage().GetText()
	case m.ImageMessage != nil:
		return "image", m.GetImageMessage().GetCaption()
	case m.VideoMessage != nil:
		return "video", m.GetVideoMessage().GetCaption()
	case m.DocumentMessage != nil:
		return "document", m.GetDocumentMessage().GetCaption()
	case m.AudioMessage != nil:
		return "audio", ""
	case m.StickerMessage != nil:
		return "sticker", ""
	case m.ReactionMessage != nil:
		return "reaction", m.GetReactionMessage().GetText()
	case m.LocationMessage != nil:
		return "location", ""
	case m.ContactMessage != nil:
		return "contact", ""
	case m.ProtocolMessage != nil:
		return "protocol", ""
	case m.PollCreationMessage != nil || m.PollCreationMessageV3 != nil:
		return "poll", ""
	}
	return "other", ""
}

// clean makes a string storable on both engines: valid UTF-8 without NUL
// (PostgreSQL text cannot hold it). A message that cannot be stored would
// never be acknowledged and come back forever.
func clean(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// digits keeps the digits of a phone number.
func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}
