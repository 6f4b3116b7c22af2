package bot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// An incoming message whatsmeow could not decrypt (a sender whose Signal
// session drifted, a message not encrypted for this device) has no content
// the bot could store. whatsmeow has already sent the sender a retry receipt
// and (supervisor: AutomaticMessageRerequestFromPhone) asked the account's
// phone for it; WhatsApp has been acknowledged. The bot counts it and
// reports it as a message.undecryptable webhook event. If the sender or the
// phone sends it again, it arrives as an ordinary message under the same
// ID and chat and is stored and handled once like any other (the inbox
// ignores a second copy).

// Undecryptable is the data of a message.undecryptable webhook event.
type Undecryptable struct {
	Chat      string    `json:"chat"`
	MsgID     string    `json:"id"`
	Sender    string    `json:"sender"`
	SenderAlt string    `json:"sender_alt,omitempty"`
	IsGroup   bool      `json:"is_group"`
	SentAt    time.Time `json:"timestamp"`
	// Unavailable is true when WhatsApp delivered no ciphertext for this
	// device at all; UnavailableType says why, when it says ("view_once").
	Unavailable     bool      `json:"unavailable"`
	UnavailableType string    `json:"unavailable_type,omitempty"`
	ReceivedAt      time.Time `json:"received_at"`
}

// reportUndecryptable counts e and stores its webhook event. whatsmeow
// reports a message again when a resend is undecryptable too: the event ID
// is the message's, so the webhook gets it once.
func (b *Bot) reportUndecryptable(e *events.UndecryptableMessage) {
	if b.opts.Metrics != nil {
		b.opts.Metrics.UndecryptableMessages.Inc()
	}
	info := e.Info
	u := Undecryptable{
		Chat: phoneChat(info).String(), MsgID: clean(info.ID), Sender: info.Sender.ToNonAD().String(),
		IsGroup: info.IsGroup, SentAt: info.Timestamp, Unavailable: e.IsUnavailable,
		UnavailableType: clean(string(e.UnavailableType)), ReceivedAt: b.opts.Now(),
	}
	if !info.SenderAlt.IsEmpty() {
		u.SenderAlt = info.SenderAlt.ToNonAD().String()
	}
	b.log.Warn("bot: an incoming message could not be decrypted; the phone is asked to send it again",
		"chat", u.Chat, "id", u.MsgID, "sender", u.Sender, "unavailable", u.Unavailable, "help", troubleshoot.WaitingForMessage)
	if b.opts.Webhook == nil || u.MsgID == "" || info.Chat.Server == types.BroadcastServer {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.StoreTimeout)
	defer cancel()
	if err := b.opts.Webhook.EnqueueID(ctx, b.opts.DB, undecryptableEventID(b.opts.Session, u), webhook.KindMessageUndecryptable, u); err != nil {
		// WhatsApp was acked before this event: it cannot be had again.
		b.log.Error("bot: could not store the webhook event of an undecryptable message", "chat", u.Chat, "id", u.MsgID, "err", err)
	}
}

// undecryptableEventID is the webhook event ID of an undecryptable message.
func undecryptableEventID(session string, u Undecryptable) string {
	h := sha256.Sum256([]byte(webhook.KindMessageUndecryptable + "\x00" + session + "\x00" + u.Chat + "\x00" + u.MsgID))
	return "und_" + hex.EncodeToString(h[:16])
}
