package outgoing

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.mau.fi/whatsmeow"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err       error
		permanent bool
	}{
		{whatsmeow.ErrNotConnected, false},
		{whatsmeow.ErrIQDisconnected, false},
		{whatsmeow.ErrMessageTimedOut, false},
		{context.DeadlineExceeded, false},
		{fmt.Errorf("%w 500", whatsmeow.ErrServerReturnedError), false},
		{whatsmeow.ErrClientIsNil, false},
		{fmt.Errorf("%w example.com", whatsmeow.ErrUnknownServer), true},
		{whatsmeow.ErrRecipientADJID, true},
		{whatsmeow.ErrPhoneNumberTooShort, true},
		{whatsmeow.ErrBroadcastListUnsupported, true},
		// An account WhatsApp gave no LID (yet): a later attempt may find it.
		{errors.New("no LID found for 49151@s.whatsapp.net from server"), false},
		{Permanent(errors.New("anything")), true},
	}
	for _, tt := range tests {
		wrapped := fmt.Errorf("send: %w", tt.err)
		if got := IsPermanent(Classify(wrapped)); got != tt.permanent {
			t.Errorf("Classify(%v) permanent = %v; want %v", tt.err, got, tt.permanent)
		}
		if c := Classify(wrapped); !errors.Is(c, tt.err) {
			t.Errorf("Classify(%v) lost the cause: %v", tt.err, c)
		}
	}
	if Classify(nil) != nil || Permanent(nil) != nil {
		t.Error("nil became an error")
	}
}

func TestWhatsAppSenderWithoutClient(t *testing.T) {
	s := &WhatsAppSender{Client: func() *whatsmeow.Client { return nil }}
	err := s.Send(context.Background(), Message{To: "4915123456789@s.whatsapp.net", Text: "x", WAID: "3EB0AAAAAAAAAAAAAAAA"})
	if err == nil || IsPermanent(err) {
		t.Fatalf("Send without a client = %v; want a transient error", err)
	}
}
