package outgoing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/blacksky-bot/blacksky/internal/contacts"
	"github.com/blacksky-bot/blacksky/internal/sendcheck"
)

// ErrNotOnWhatsApp is the permanent failure for a number with no WhatsApp account.
var ErrNotOnWhatsApp = errors.New("not on WhatsApp")

// WhatsAppSender sends text messages through the current whatsmeow client.
type WhatsAppSender struct {
	// Client returns the client to send with; it may change after a logout
	// and may be nil while there is none.
	Client func() *whatsmeow.Client
	// Contacts, if set, is asked whether a phone-number recipient has a
	// WhatsApp account before a send to it, so a number without one goes
	// to dead at once ("not on WhatsApp") instead of being sent. WhatsApp
	// acks a message to such a number, so without the question it would be
	// recorded sent. The directory answers known recipients without a round
	// trip (internal/contacts).
	Contacts *contacts.Directory
	// Acks, if set, is told how each send ended, so a connection on which
	// WhatsApp acknowledges nothing is ended (supervisor.Supervisor).
	Acks AckWatcher
}

// AckWatcher watches whether WhatsApp acknowledges what is written to it.
type AckWatcher interface {
	// AckTimeout bounds the wait for an ack once a message is written (not
	// the encryption before it); 0 leaves whatsmeow's default.
	AckTimeout() time.Duration
	// SendEnded gets each send's outcome: nil when acked,
	// whatsmeow.ErrMessageTimedOut when the ack did not come in time.
	SendEnded(err error)
}

// Send sends msg.Text to msg.To with msg.WAID as its message ID and
// classifies the failure: permanent ones are wrapped with Permanent.
func (s *WhatsAppSender) Send(ctx context.Context, msg Message) error {
	cli := s.Client()
	if cli == nil {
		return whatsmeow.ErrClientIsNil
	}
	to, err := types.ParseJID(msg.To)
	if err != nil {
		return Permanent(fmt.Errorf("parse recipient %q: %w", msg.To, err))
	}
	if s.Contacts != nil && to.Server == types.DefaultUserServer {
		c, err := s.Contacts.Lookup(ctx, to)
		if err != nil {
			return Classify(err)
		}
		if !c.OnWhatsApp {
			return Permanent(fmt.Errorf("%w: %s", ErrNotOnWhatsApp, to.User))
		}
	}
	ctx, check := sendcheck.Watch(ctx)
	extra := whatsmeow.SendRequestExtra{ID: types.MessageID(msg.WAID)}
	if s.Acks != nil {
		extra.Timeout = s.Acks.AckTimeout()
	}
	_, err = cli.SendMessage(ctx, to, TextMessage(msg.Text), extra)
	if s.Acks != nil {
		s.Acks.SendEnded(err)
	}
	if err == nil {
		// WhatsApp acked it, but whatsmeow may have left a device out
		// (internal/sendcheck): then the message is not sent, and the next
		// attempt goes to every device under the same ID.
		err = check.Err()
	}
	if err != nil {
		return Classify(fmt.Errorf("send message %s to %s: %w", msg.WAID, to, err))
	}
	return nil
}

// eventTimeout bounds the database work for one whatsmeow event, which
// whatsmeow hands over without a context.
const eventTimeout = 10 * time.Second

// HandleWhatsAppEvent is a whatsmeow event handler reporting success (for
// Client.AddEventHandlerWithSuccessStatus, with SynchronousAck): it records
// receipts for our messages (RecordReceipt), sends undelivered messages
// again when their recipient's identity changed (ResendUndelivered) and
// passes WhatsApp's notices of the reach-out lock to NoticeReachoutLock. It
// returns false when a receipt could not be stored: whatsmeow then does not
// acknowledge it, and WhatsApp sends it again at the next connection.
func (q *Queue) HandleWhatsAppEvent(evt any) bool {
	switch e := evt.(type) {
	case *events.NotifyAccountReachoutTimelock:
		q.NoticeReachoutLock(e.IsActive, e.TimeEnforcementEnds.Time)
	case *events.Receipt:
		return q.handleReceipt(e)
	case *events.IdentityChange:
		ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
		defer cancel()
		// A notification's time is the server's, in seconds; what was
		// sent until now went to the old keys. An implicit change is
		// stamped when whatsmeow met the new keys.
		before := q.now()
		if e.Implicit && !e.Timestamp.IsZero() {
			before = e.Timestamp
		}
		if _, err := q.ResendUndelivered(ctx, e.JID.ToNonAD().String(), before); err != nil {
			q.log.Error("sending undelivered messages again after an identity change failed", "to", e.JID.ToNonAD().String(), "err", err)
		}
	}
	return true
}

// receiptStates are the receipt types that move our messages on; the
// others (our own devices' read-self and played-self, retry, sender,
// inactive, server errors) are not about the recipient.
var receiptStates = map[types.ReceiptType]State{
	types.ReceiptTypeDelivered: Delivered,
	types.ReceiptTypeRead:      Read,
	types.ReceiptTypePlayed:    Played,
}

// handleReceipt records a recipient's receipt for our messages.
func (q *Queue) handleReceipt(e *events.Receipt) bool {
	state, ok := receiptStates[e.Type]
	if !ok || e.IsFromMe {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventTimeout)
	defer cancel()
	r := Receipt{IDs: e.MessageIDs, Chat: e.Chat.ToNonAD().String(), Sender: e.Sender.String(), State: state, At: e.Timestamp}
	if err := q.RecordReceipt(ctx, r); err != nil {
		q.log.Error("storing a receipt failed; WhatsApp will send it again", "state", state, "chat", r.Chat, "err", err)
		return false
	}
	return true
}

// TextMessage is the WhatsApp message a text is sent as; a retry receipt
// must be answered with the same content, so both paths build it here.
func TextMessage(text string) *waE2E.Message {
	return &waE2E.Message{Conversation: proto.String(text)}
}

// Classify marks err permanent when it says the message can never be
// delivered as it is (bad or unknown recipient), and with ErrReachoutLocked
// when WhatsApp refused it with error 463 (reachout.go); everything else,
// such as a lost connection, a timeout or another server error, is left to
// retries.
func Classify(err error) error {
	if err == nil || IsPermanent(err) || errors.Is(err, ErrReachoutLocked) {
		return err
	}
	if isReachoutRefusal(err) {
		return fmt.Errorf("%w: %w", ErrReachoutLocked, err)
	}
	switch {
	case errors.Is(err, whatsmeow.ErrRecipientADJID),
		errors.Is(err, whatsmeow.ErrUnknownServer),
		errors.Is(err, whatsmeow.ErrBroadcastListUnsupported),
		errors.Is(err, whatsmeow.ErrPhoneNumberTooShort),
		errors.Is(err, whatsmeow.ErrPhoneNumberIsNotInternational),
		errors.Is(err, whatsmeow.ErrInvalidInlineBotID),
		errors.Is(err, whatsmeow.ErrNotInGroup),
		errors.Is(err, whatsmeow.ErrGroupNotFound),
		errors.Is(err, ErrNotOnWhatsApp):
		return Permanent(err)
	}
	// whatsmeow's "no LID found for ... from server" is not matched here:
	// WhatsApp gave an account no LID, which a later attempt may find; a
	// number without an account is told apart by asking (Contacts).
	return err
}

// retryLookupTimeout bounds the database lookup for a retry receipt, which
// whatsmeow asks for without a context.
const retryLookupTimeout = 5 * time.Second

// RetryMessageFunc returns a function for whatsmeow.Client.GetMessageForRetry:
// when a recipient's device asks for a message again, it finds the sent
// message by its ID in q and rebuilds it. The chat is not matched, since
// whatsmeow may name it by LID while we stored the phone-number JID.
func RetryMessageFunc(q *Queue) func(requester, to types.JID, id types.MessageID) *waE2E.Message {
	return func(_, _ types.JID, id types.MessageID) *waE2E.Message {
		ctx, cancel := context.WithTimeout(context.Background(), retryLookupTimeout)
		defer cancel()
		m, ok, err := q.FindSent(ctx, "", string(id))
		if err != nil {
			q.log.Warn("look up message for a retry receipt failed", "wa_id", id, "err", err)
			return nil
		}
		if !ok {
			return nil
		}
		return TextMessage(m.Text)
	}
}
