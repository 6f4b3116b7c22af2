package sandbox

import (
	"testing"
	"time"
)

// whatsmeow writes a message's frame again when the connection ended while
// it waited for the ack. The contact got the first copy, so it drops the
// second as a duplicate, as whatsmeow and WhatsApp's apps do, instead of
// failing to decrypt it (which the chaos run counts as damage).
func TestResentFrameIsADuplicate(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("+4915112345678")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Inject(Fault{Kind: FaultWithholdAcks}); err != nil {
		t.Fatal(err)
	}
	since := s.LastSeq()
	sent := make(chan error, 1)
	go func() {
		_, err := b.cli.SendMessage(ctx, alice.JID(), textMsg("once"))
		sent <- err
	}()
	held, err := s.WaitEvent(ctx, EventAckWithheld, since)
	if err != nil {
		t.Fatal(err)
	}
	// The connection ends with the ack still held; whatsmeow reconnects and
	// writes the same frame again.
	if err := s.Inject(Fault{Kind: FaultDrop}); err != nil {
		t.Fatal(err)
	}
	s.ClearFaults()
	select {
	case err := <-sent:
		if err != nil {
			t.Fatalf("send: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the send never returned")
	}
	dup, err := s.WaitEvent(ctx, EventDuplicateIgnored, since)
	if err != nil || dup.Detail != held.Detail || dup.JID != alice.JID().String() {
		t.Fatalf("duplicate %+v %v, want %s at %s", dup, err, held.Detail, alice.JID())
	}
	if n := s.CountEvents(EventDecryptFailed, since); n != 0 {
		t.Fatalf("%d decryption failures for a repeated frame", n)
	}
	if in := alice.Inbox(); len(in) != 1 || in[0].ID != held.Detail || in[0].Text != "once" {
		t.Fatalf("inbox %+v, want the message once", in)
	}
}

// A different ciphertext under a used counter is no duplicate: it is what a
// sender whose session went back writes, and it still fails.
func TestDecryptedCopiesTellRepeatsFromReuse(t *testing.T) {
	var d decryptedCopies
	d.add("a:1", []byte("frame"))
	if !d.seen("a:1", []byte("frame")) || d.seen("a:1", []byte("other")) || d.seen("b:1", []byte("frame")) {
		t.Fatal("a copy is a duplicate only for the same sender and ciphertext")
	}
	for i := range rememberedCopies {
		d.add("a:1", []byte{byte(i), byte(i >> 8), 1})
	}
	if d.seen("a:1", []byte("frame")) || len(d.set) != rememberedCopies {
		t.Fatalf("remembers %d copies, want the last %d", len(d.set), rememberedCopies)
	}
}
