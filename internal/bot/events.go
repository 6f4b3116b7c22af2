package bot

import (
	"context"

	"go.mau.fi/whatsmeow"
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
//     makes whatsmeow withhold the acknowledgement when storing failed.
func (b *Bot) Configure(cli *whatsmeow.Client) error {
	cli.SynchronousAck = true
	cli.EnableDecryptedEventBuffer = true
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
	case *events.Connected:
		select {
		case b.connected <- struct{}{}:
		default:
		}
	}
	return true
}

func (b *Bot) storeEvent(e *events.Message) bool {
	m, ok := fromEvent(e, b.opts.Now())
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.StoreTimeout)
	defer cancel()
	created, err := b.Store(ctx, m)
	if err != nil {
		b.log.Error("bot: could not store an incoming message; WhatsApp is not acknowledged and will deliver it again at the next connection",
			"chat", m.Chat, "id", m.MsgID, "sender", m.Sender, "err", err)
		return false
	}
	if created {
		b.log.Info("message received", "chat", m.Chat, "id", m.MsgID, "sender", m.Sender, "kind", m.Kind)
	} else {
		b.log.Debug("bot: message delivered again, already stored", "chat", m.Chat, "id", m.MsgID)
	}
	return true
}
