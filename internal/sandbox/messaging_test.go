package sandbox

import (
	"fmt"
	"maps"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/types/events"
)

func textMsg(s string) *waE2E.Message { return &waE2E.Message{Conversation: proto.String(s)} }

func TestMessagesBothWays(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("+4915112345678")
	if err != nil {
		t.Fatal(err)
	}

	// First message: the bot has no session yet, so it is a pkmsg.
	resp, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("hello alice"))
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if resp.Timestamp.IsZero() {
		t.Error("ack carried no timestamp")
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 1 }); err != nil {
		t.Fatal(err)
	}
	got := alice.Inbox()[0]
	if got.ID != resp.ID || got.Text != "hello alice" || got.Type != "pkmsg" || got.From != b.cli.Store.ID.String() {
		t.Fatalf("inbox[0] = %+v, want id %s text %q from %s as pkmsg", got, resp.ID, "hello alice", b.cli.Store.ID)
	}

	// The contact answers; the bot decrypts it with the prekeys it uploaded.
	mark := b.rec.mark()
	id, err := alice.Send(ctx, "hi bot")
	if err != nil {
		t.Fatalf("contact send: %v", err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	// As WhatsApp does now, the contact writes from its LID, its number as the alternate address.
	if msg.Info.ID != id || msg.Message.GetConversation() != "hi bot" || msg.Info.Sender.ToNonAD() != alice.LID() || msg.Info.SenderAlt.ToNonAD() != alice.JID() {
		t.Fatalf("bot got %s %q from %s (alt %s), want %s %q from %s (alt %s)", msg.Info.ID, msg.Message.GetConversation(), msg.Info.Sender, msg.Info.SenderAlt, id, "hi bot", alice.LID(), alice.JID())
	}
	if err := s.WaitFor(ctx, func() bool {
		for _, r := range alice.Receipts() {
			if r.ID == id {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no receipt for the contact's message: %v", err)
	}
	// The contact's delivery receipt for the bot's first message reached the bot.
	if _, err := b.rec.wait(ctx, 0, func(e any) bool {
		r, ok := e.(*events.Receipt)
		return ok && len(r.MessageIDs) > 0 && r.MessageIDs[0] == resp.ID
	}); err != nil {
		t.Fatalf("no delivery receipt at the bot: %v", err)
	}

	// The account's phone decrypted its own copy of the message.
	if err := s.WaitFor(ctx, func() bool { return len(s.PhoneInbox()) >= 1 }); err != nil {
		t.Fatal(err)
	}
	if pc := s.PhoneInbox()[0]; pc.ID != resp.ID || pc.Text != "hello alice" || pc.To != alice.LID().String() {
		t.Fatalf("phone copy = %+v", pc)
	}

	// A message to the bot's own number (a "note to self") reaches the phone.
	self, err := b.cli.SendMessage(ctx, s.AccountJID(), textMsg("note to self"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool {
		for _, m := range s.PhoneInbox() {
			if m.ID == self.ID && m.Text == "note to self" && m.To == s.AccountLID().String() {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("note to self not on the phone: %v (%+v)", err, s.PhoneInbox())
	}

	// After the reply the session is established: later messages are plain msg, in order.
	var ids []string
	for i := range 5 {
		r, err := b.cli.SendMessage(ctx, alice.JID(), textMsg(fmt.Sprintf("msg %d", i)))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		ids = append(ids, r.ID)
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 6 }); err != nil {
		t.Fatal(err)
	}
	for i, m := range alice.Inbox()[1:] {
		if m.ID != ids[i] || m.Text != fmt.Sprintf("msg %d", i) || m.Type != "msg" {
			t.Errorf("inbox[%d] = %+v, want id %s text %q as msg", i+1, m, ids[i], fmt.Sprintf("msg %d", i))
		}
	}

	// A retried send with the same ID shows up twice: the inbox keeps duplicates.
	if _, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("again"), whatsmeowExtraID(ids[4])); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 7 }); err != nil {
		t.Fatal(err)
	}
	if last := alice.Inbox()[6]; last.ID != ids[4] {
		t.Errorf("duplicate id not recorded: %+v", last)
	}
	// Let the bot ack the contact's last delivery receipt before the cleanup disconnects it.
	if err := s.WaitFor(ctx, func() bool { return s.CountEvents(EventClientAck, 0) >= 7 }); err != nil {
		t.Fatal(err)
	}
}

func TestContactMessageQueuedWhileBotOffline(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	bob, err := s.AddContact("447700900123")
	if err != nil {
		t.Fatal(err)
	}
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	id, err := bob.Send(ctx, "are you there?")
	if err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	if err := b.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	if msg.Info.ID != id || msg.Message.GetConversation() != "are you there?" {
		t.Fatalf("got %s %q", msg.Info.ID, msg.Message.GetConversation())
	}
	// Let the bot's receipt arrive before the cleanup disconnects it (see quiesce).
	if err := s.WaitFor(ctx, func() bool { return len(bob.Receipts()) > 0 }); err != nil {
		t.Fatal(err)
	}
}

func TestUserQueriesReadReceiptsAndLogout(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	carol, err := s.AddContact("33612345678")
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.cli.IsOnWhatsApp(ctx, []string{"+33612345678", "+33699999999"})
	if err != nil {
		t.Fatalf("IsOnWhatsApp: %v", err)
	}
	// Asked in LID addressing mode (as current whatsmeow asks), a user is named by its LID, with its number beside it.
	if len(res) != 2 || !res[0].IsIn || res[0].JID != carol.LID() || res[0].PhoneNumber != carol.JID() || res[1].IsIn || !res[1].PhoneNumber.IsEmpty() {
		t.Fatalf("IsOnWhatsApp = %+v", res)
	}

	mark := b.rec.mark()
	id, err := carol.Send(ctx, "read me")
	if err != nil {
		t.Fatal(err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	if err := b.cli.MarkRead(ctx, []string{id}, time.Now(), msg.Info.Chat, msg.Info.Sender); err != nil {
		t.Fatalf("mark read: %v", err)
	}
	if err := s.WaitFor(ctx, func() bool {
		for _, r := range carol.Receipts() {
			if r.ID == id && r.Type == "read" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("no read receipt: %v (got %+v)", err, carol.Receipts())
	}

	// Running low on one-time prekeys makes the server ask the device for more.
	s.mu.Lock()
	rec := s.acct.Devices[b.cli.Store.ID.Device]
	rec.PreKeys = rec.PreKeys[:lowPreKeyCount]
	s.mu.Unlock()
	seq := s.LastSeq()
	dave, err := s.AddContact("33600000002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dave.Send(ctx, "first contact"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitEvent(ctx, EventPreKeysUploaded, seq); err != nil {
		t.Fatal(err)
	}

	// The bot's own logout unlinks the device on the server.
	b.serverClosed.Store(true)
	if err := b.cli.Logout(ctx); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if len(s.LinkedDevices()) != 0 {
		t.Fatalf("still linked after logout: %v", s.LinkedDevices())
	}
}

func TestContactLIDAddressing(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	erin, err := s.AddContact("390612345678")
	if err != nil {
		t.Fatal(err)
	}
	if erin.LID().IsEmpty() {
		t.Fatal("contact has no LID in LID mode")
	}

	// The contact writes first, from its LID, as current WhatsApp does.
	mark := b.rec.mark()
	id, err := erin.Send(ctx, "ciao from a lid")
	if err != nil {
		t.Fatal(err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	if msg.Info.ID != id || msg.Info.Sender.ToNonAD() != erin.LID() || msg.Info.SenderAlt.ToNonAD() != erin.JID() {
		t.Fatalf("bot saw sender %s (alt %s), want %s (alt %s)", msg.Info.Sender, msg.Info.SenderAlt, erin.LID(), erin.JID())
	}

	// Replying to the chat as given (a LID) and to the phone number both reach the contact.
	if _, err := b.cli.SendMessage(ctx, msg.Info.Chat, textMsg("reply to lid chat")); err != nil {
		t.Fatalf("send to LID chat: %v", err)
	}
	if _, err := b.cli.SendMessage(ctx, erin.JID(), textMsg("reply to number")); err != nil {
		t.Fatalf("send to PN: %v", err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(erin.Inbox()) == 2 }); err != nil {
		t.Fatal(err)
	}
	if in := erin.Inbox(); in[0].Text != "reply to lid chat" || in[1].Text != "reply to number" {
		t.Fatalf("inbox = %+v", in)
	}
	if n := s.CountEvents(EventDecryptFailed, 0); n != 0 {
		t.Fatalf("%d decrypt failures", n)
	}
	if err := s.WaitFor(ctx, func() bool { return s.CountEvents(EventClientAck, 0) >= 2 }); err != nil {
		t.Fatal(err)
	}
}

// TestSendsFetchNoOwnPrekeys: the bot never has a session with its own
// device, and whatsmeow before 2026-06 (3706a7d3; blacksky patched it until
// then) fetched, and so used up, one of its own prekeys on every send.
// Sends go by LID, so the bundles fetched are those of the LIDs.
func TestSendsFetchNoOwnPrekeys(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("+4915112345679")
	if err != nil {
		t.Fatal(err)
	}
	since := s.LastSeq()
	const sends = 5
	for i := range sends {
		if _, err := b.cli.SendMessage(ctx, alice.JID(), textMsg(fmt.Sprintf("m%d", i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == sends }); err != nil {
		t.Fatal(err)
	}
	fetched := map[string]int{}
	for _, e := range s.Events() {
		if e.Seq > since && e.Kind == EventPreKeyFetched {
			fetched[e.JID]++
		}
	}
	// One bundle, to start the session with the contact. The session with the
	// account's phone exists already: the phone started it when it sent the
	// new device its app state keys (appstate.go).
	want := map[string]int{alice.LID().String(): 1}
	if !maps.Equal(fetched, want) {
		t.Errorf("prekey bundles fetched while sending %d messages: %v, want %v (bot device %s)", sends, fetched, want, b.cli.Store.ID)
	}
}

// A contact that lost its session asks for a message again; whatsmeow
// encrypts it anew under the same ID, starting a new session from the
// bundle in the retry receipt, and later messages use that session.
func TestRetryReceiptResendsUnderSameID(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("+4915112345670")
	if err != nil {
		t.Fatal(err)
	}
	first, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("lost on a reinstall"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 1 }); err != nil {
		t.Fatal(err)
	}
	if err := alice.RequestRetry(ctx, "3EB0NOSUCHMESSAGE"); err == nil {
		t.Error("a retry for a message the contact never received was sent")
	}
	if err := alice.RequestRetry(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 2 }); err != nil {
		t.Fatalf("no resend after the retry receipt: %v", err)
	}
	if got := alice.Inbox()[1]; got.ID != first.ID || got.Text != "lost on a reinstall" || got.Type != "pkmsg" {
		t.Fatalf("resend = %+v; want id %s, the same text, as a pkmsg (new session)", got, first.ID)
	}
	if _, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("after")); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(alice.Inbox()) == 3 }); err != nil {
		t.Fatal(err)
	}
	if got := alice.Inbox()[2]; got.Text != "after" {
		t.Fatalf("next message = %+v", got)
	}
	if n := s.CountEvents(EventDecryptFailed, 0); n != 0 {
		t.Errorf("%d messages failed to decrypt", n)
	}
}
