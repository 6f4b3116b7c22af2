package bot

import (
	"context"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// Configure prepares a whatsmeow client for lossless receiving, for
// supervisor.Options.Configure (chain it with any other Configure):
//
//   - SynchronousAck: WhatsApp gets the acknowledgement and delivery receipt
//     of a message only after the event handlers returned;
//   - EnableDecryptedEventBuffer: whatsmeow keeps the decrypted plaintext
//     until then, so a message redelivered after a failure can be decrypted
//     again (the Signal ratchet has moved on);
//   - HandleEvent is registered as a handler that reports failure, which
//     makes whatsmeow withhold the acknowledgement when storing failed;
//   - the client's LID map names the chat of a message the phone sent again
//     (whatsmeow gives it no phone number beside the LID).
func (b *Bot) Configure(cli *whatsmeow.Client) error {
	cli.SynchronousAck = true
	cli.EnableDecryptedEventBuffer = true
	b.lids.Store(&lidMap{cli})
	cli.AddEventHandlerWithSuccessStatus(b.HandleEvent)
	return nil
}

// HandleEvent stores an incoming message in the inbox before it returns,
// and notes the first connection for the owner notice. It returns false
// when the message could not be stored: whatsmeow then sends WhatsApp no
// acknowledgement and no receipt, and WhatsApp delivers the message again
// at the next connection. It runs on whatsmeow's event goroutine.
func (b *Bot) HandleEvent(evt any) bool {
	switch e := evt.(type) {
	case *events.Message:
		return b.storeEvent(e)
	case *events.UndecryptableMessage:
		b.reportUndecryptable(e)
	case *events.Connected:
		select {
		case b.connected <- struct{}{}:
		default:
		}
	}
	return true
}

func (b *Bot) storeEvent(e *events.Message) bool {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.StoreTimeout)
	defer cancel()
	b.withPhoneNumber(ctx, e)
	m, ok := fromEvent(e, b.opts.Now())
	if !ok {
		return true
	}
	created, err := b.Store(ctx, m)
	if err != nil {
		b.log.Error("bot: could not store an incoming message; WhatsApp is not acknowledged and will deliver it again at the next connection",
			"chat", m.Chat, "id", m.MsgID, "sender", m.Sender, "err", err)
		return false
	}
	if created && e.UnavailableRequestID != "" && b.opts.Metrics != nil {
		b.opts.Metrics.RecoveredMessages.Inc()
	}
	if created {
		b.log.Info("message received", "chat", m.Chat, "id", m.MsgID, "sender", m.Sender, "kind", m.Kind,
			"from_phone", e.UnavailableRequestID != "")
	} else {
		b.log.Debug("bot: message delivered again, already stored", "chat", m.Chat, "id", m.MsgID)
	}
	return true
}

// lidMap reaches the client's LID-to-number map, behind an atomic pointer
// because each new client (after a logout) brings its own. The map is read
// at each use: whatsmeow gives a device its stores only once it is paired.
type lidMap struct{ cli *whatsmeow.Client }

// withPhoneNumber gives a message from a LID the sender's number from the
// LID map when WhatsApp did not send it along: a message the phone sent
// again carries the LID only, and its chat must be the one the original
// would have had, so that both copies are one inbox row.
func (b *Bot) withPhoneNumber(ctx context.Context, e *events.Message) {
	info := &e.Info
	if info.IsFromMe || info.IsGroup || info.Sender.Server != types.HiddenUserServer || !info.SenderAlt.IsEmpty() {
		return
	}
	lids := b.lids.Load()
	if lids == nil || lids.cli.Store.LIDs == nil {
		return
	}
	pn, err := lids.cli.Store.LIDs.GetPNForLID(ctx, info.Sender.ToNonAD())
	if err != nil {
		b.log.Warn("bot: could not look up the number of a LID; the message is kept under the LID", "lid", info.Sender, "err", err)
		return
	}
	if !pn.IsEmpty() {
		info.SenderAlt = pn
	}
}
