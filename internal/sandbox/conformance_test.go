package sandbox

import (
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
)

// TestConformance walks the current whatsmeow client through the protocol
// as a bot meets it, in order, on one simulated account: pair by QR (the
// current link payload), log in again from the stored session and get what
// waited meanwhile with the end-of-backlog marker, send to a new contact
// (prekey message) and to a known one, receive from a LID contact, answer a
// retry receipt under the same ID, follow a contact's move from number to
// LID, and link a second device by phone code. Every query the client sent
// on the way got an answer. The faults have their own tables, run by
// TestFaults*; TestEveryFaultIsExercised checks they cover every kind.
func TestConformance(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	ctx := testCtx(t, 90*time.Second)

	b := pairQR(t, s)
	if b.cli.Store.LID.IsEmpty() {
		t.Fatal("paired without a LID")
	}
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}

	// Offline delivery: a contact writes while the bot is away.
	alice, err := s.AddContact("4915112345001")
	if err != nil {
		t.Fatal(err)
	}
	awayID, err := alice.Send(ctx, "while you were away")
	if err != nil {
		t.Fatal(err)
	}
	b = newBot(t, s, b.dbPath)
	if err := b.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, 0)
	if msg.Info.ID != awayID || msg.Info.Sender.ToNonAD() != alice.LID() || msg.Info.SenderAlt.ToNonAD() != alice.JID() {
		t.Fatalf("offline message %s from %s (alt %s); want %s from %s (alt %s)", msg.Info.ID, msg.Info.Sender, msg.Info.SenderAlt, awayID, alice.LID(), alice.JID())
	}
	if done := waitEvent[*events.OfflineSyncCompleted](t, ctx, b.rec, 0); done.Count != 1 {
		t.Fatalf("end of backlog counts %d, want 1", done.Count)
	}

	// Send to a new contact, then again to it and to the one that wrote.
	bob, err := s.AddContact("4915112345002")
	if err != nil {
		t.Fatal(err)
	}
	first, err := b.cli.SendMessage(ctx, bob.JID(), textMsg("hello bob"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := b.cli.SendMessage(ctx, bob.JID(), textMsg("again"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("answer")); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(bob.Inbox()) == 2 && len(alice.Inbox()) == 1 }); err != nil {
		t.Fatalf("sends did not arrive: %v", err)
	}
	if in := bob.Inbox(); in[0].ID != first.ID || in[0].Type != "pkmsg" || in[1].ID != second.ID {
		t.Fatalf("bob's inbox %+v", in)
	}

	// A retry receipt: the contact lost its session and asks again.
	if err := bob.RequestRetry(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(bob.Inbox()) == 3 }); err != nil {
		t.Fatalf("no resend after the retry receipt: %v", err)
	}
	if again := bob.Inbox()[2]; again.ID != first.ID || again.Text != "hello bob" {
		t.Fatalf("resend %+v, want %s again", again, first.ID)
	}

	// A contact addressed by number moves to its LID.
	carol, err := s.AddPhoneNumberContact("4915112345003")
	if err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	if _, err := carol.Send(ctx, "by number"); err != nil {
		t.Fatal(err)
	}
	if m := waitEvent[*events.Message](t, ctx, b.rec, mark); m.Info.Sender.ToNonAD() != carol.JID() {
		t.Fatalf("before the move: sender %s", m.Info.Sender)
	}
	if _, err := s.MigrateContact(carol.Number()); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool {
		lid, _ := b.cli.Store.LIDs.GetLIDForPN(ctx, carol.JID())
		return lid == carol.LID()
	}); err != nil {
		t.Fatalf("the bot never learnt the LID: %v", err)
	}
	if _, err := b.cli.SendMessage(ctx, carol.JID(), textMsg("after the move")); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(carol.Inbox()) == 1 }); err != nil {
		t.Fatalf("no message after the move: %v", err)
	}

	// A second device of the account, linked by phone code.
	b2, codeCtx := connectForCode(t, s)
	code, err := b2.cli.PairPhone(codeCtx, s.PhoneNumber(), true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnterCode(codeCtx, code); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Connected](t, codeCtx, b2.rec, 0)
	if n := len(s.LinkedDevices()); n != 2 {
		t.Fatalf("%d linked devices, want 2", n)
	}

	for _, e := range s.Events() {
		switch e.Kind {
		case EventUnknownIQ:
			t.Errorf("a query went unanswered: %s", e.Detail)
		case EventDecryptFailed:
			t.Errorf("a contact could not decrypt: %s", e.Detail)
		}
	}
}

// TestEveryFaultIsExercised: each fault the sandbox offers is injected by
// at least one case of the fault tables, so a new kind cannot go untested.
func TestEveryFaultIsExercised(t *testing.T) {
	covered := map[FaultKind]bool{}
	for _, table := range [][]faultCase{recoverableFaults, keepAliveFaults, terminalFaults, messageFaults, deadConnFaults} {
		for _, tc := range table {
			covered[tc.fault.Kind] = true
		}
	}
	for k := range allFaults {
		if !covered[k] {
			t.Errorf("fault %s is in no fault table", k)
		}
	}
}
