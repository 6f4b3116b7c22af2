package sandbox

import (
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types/events"
)

func TestSessionSurvivesSandboxRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, Options{DataDir: dir})
	addr := s1.Addr()
	b := pairQR(t, s1)
	ctx := testCtx(t, 40*time.Second)
	alice, err := s1.AddContact("4915112345678")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("before restart")); err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	if _, err := alice.Send(ctx, "reply before restart"); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Message](t, ctx, b.rec, mark)
	if err := s1.WaitFor(ctx, func() bool { return len(alice.Receipts()) > 0 }); err != nil {
		t.Fatal(err)
	}

	mark = b.rec.mark()
	if err := s1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	waitEvent[*events.Disconnected](t, ctx, b.rec, mark)

	// Same address and data dir: the bot's auto-reconnect logs in to the new process.
	s2 := startServer(t, Options{DataDir: dir, Listen: addr})
	waitEvent[*events.Connected](t, ctx, b.rec, mark)
	if got := s2.LinkedDevices(); len(got) != 1 || got[0] != *b.cli.Store.ID {
		t.Fatalf("linked devices after restart = %v", got)
	}
	alice2 := s2.Contact("4915112345678")
	if alice2 == nil {
		t.Fatal("contact forgotten across restart")
	}
	resp, err := b.cli.SendMessage(ctx, alice2.JID(), textMsg("after restart"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.WaitFor(ctx, func() bool { return len(alice2.Inbox()) == 1 }); err != nil {
		t.Fatal(err)
	}
	// The Signal session was persisted: no new prekey message was needed.
	if got := alice2.Inbox()[0]; got.ID != resp.ID || got.Text != "after restart" || got.Type != "msg" {
		t.Fatalf("inbox after restart = %+v", got)
	}
	mark = b.rec.mark()
	id, err := alice2.Send(ctx, "reply after restart")
	if err != nil {
		t.Fatal(err)
	}
	msg := waitEvent[*events.Message](t, ctx, b.rec, mark)
	if msg.Info.ID != id || msg.Message.GetConversation() != "reply after restart" {
		t.Fatalf("bot got %s %q", msg.Info.ID, msg.Message.GetConversation())
	}
	if err := s2.WaitFor(ctx, func() bool { return len(alice2.Receipts()) > 0 }); err != nil {
		t.Fatal(err)
	}
}

// TestContactAddressingSurvivesRestart: whether a contact has its LID is
// kept with the contact, in either addressing mode of the server.
func TestContactAddressingSurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, Options{DataDir: dir})
	withLID, err := s1.AddContact("4915112340001")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"4915112340002", "4915112340003"} {
		if _, err := s1.AddPhoneNumberContact(n); err != nil {
			t.Fatal(err)
		}
	}
	migrated, err := s1.MigrateContact("4915112340003")
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pn := range []bool{false, true} {
		s2 := startServer(t, Options{DataDir: dir, PhoneNumberContacts: pn})
		got := map[string]string{}
		for _, n := range s2.Contacts() {
			got[n] = s2.Contact(n).LID().String()
		}
		want := map[string]string{"4915112340001": withLID.LID().String(), "4915112340002": "", "4915112340003": migrated.LID().String()}
		for n, l := range want {
			if got[n] != l {
				t.Errorf("PhoneNumberContacts=%v: contact %s has LID %q after a restart, want %q", pn, n, got[n], l)
			}
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
