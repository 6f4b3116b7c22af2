package sandbox

import (
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// TestContactMigratesMidConversation: a contact addressed by phone number
// writes, WhatsApp moves it to its LID, and the conversation goes on by LID:
// the bot learns the mapping from the device notification, its reply to the
// phone number reaches the contact (current whatsmeow sends by LID), and
// the contact's next message comes from its LID with the number as
// alternate address.
func TestContactMigratesMidConversation(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{PhoneNumberContacts: true})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	dave, err := s.AddContact("447700900123")
	if err != nil {
		t.Fatal(err)
	}
	if !dave.LID().IsEmpty() {
		t.Fatalf("a phone-number contact has LID %s", dave.LID())
	}
	mark := b.rec.mark()
	if _, err := dave.Send(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	if msg := waitEvent[*events.Message](t, ctx, b.rec, mark); msg.Info.Sender.ToNonAD() != dave.JID() {
		t.Fatalf("before the migration the bot saw sender %s, want %s", msg.Info.Sender, dave.JID())
	}

	seq := s.LastSeq()
	if _, err := s.MigrateContact("+" + dave.Number()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MigrateContact(dave.Number()); err != ErrAlreadyLID {
		t.Fatalf("migrating twice: %v, want ErrAlreadyLID", err)
	}
	lid := dave.LID()
	if lid.IsEmpty() {
		t.Fatal("no LID after the migration")
	}
	// The bot acks the device notification once it has handled it.
	if err := s.WaitFor(ctx, func() bool {
		for _, e := range s.Events() {
			if e.Seq > seq && e.Kind == EventClientAck && strings.HasPrefix(e.Detail, "notification ") {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("the bot never acked the migration notification: %v", err)
	}
	if got, err := b.cli.Store.LIDs.GetLIDForPN(ctx, dave.JID()); err != nil || got != lid {
		t.Fatalf("bot's LID for %s = %s, %v; want %s", dave.JID(), got, err, lid)
	}

	resp, err := b.cli.SendMessage(ctx, dave.JID(), textMsg("after"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(dave.Inbox()) == 1 }); err != nil {
		t.Fatalf("reply after the migration never arrived: %v", err)
	}
	if in := dave.Inbox()[0]; in.ID != resp.ID || in.Text != "after" {
		t.Fatalf("inbox = %+v", in)
	}
	mark = b.rec.mark()
	if _, err := dave.Send(ctx, "by lid now"); err != nil {
		t.Fatal(err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	if msg.Info.Sender.ToNonAD() != lid || msg.Info.SenderAlt.ToNonAD() != dave.JID() {
		t.Fatalf("after the migration the bot saw sender %s (alt %s), want %s (alt %s)", msg.Info.Sender, msg.Info.SenderAlt, lid, dave.JID())
	}
	if n := s.CountEvents(EventDecryptFailed, 0); n != 0 {
		t.Fatalf("%d decryption failures across the migration", n)
	}
}

// TestMessagesToThePhoneNumberOfALIDContactAreDropped is what WhatsApp does
// to clients that still address migrated users by number (whatsmeow#1027):
// the server acks, and nobody gets the message.
func TestMessagesToThePhoneNumberOfALIDContactAreDropped(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	erin, err := s.AddContact("390612345670")
	if err != nil {
		t.Fatal(err)
	}
	pnOnly, err := startServer(t, Options{PhoneNumberContacts: true}).AddContact("390612345671")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ct   *Contact
		jid  string
		drop bool
	}{
		{"number of a LID contact", erin, erin.JID().String(), true},
		{"LID of a LID contact", erin, erin.LID().String(), false},
		{"number of a phone-number contact", pnOnly, pnOnly.JID().String(), false},
		{"the account's own phone", s.phone, s.AccountJID().String(), false},
	} {
		// Each contact is asked about on its own server.
		if isDropped := c.ct.s.droppedByAddress(mustJID(t, c.jid), c.ct) != ""; isDropped != c.drop {
			t.Errorf("%s: dropped = %v, want %v", c.name, isDropped, c.drop)
		}
	}
}

func mustJID(t *testing.T, s string) types.JID {
	t.Helper()
	jid, err := types.ParseJID(s)
	if err != nil {
		t.Fatal(err)
	}
	return jid
}
