package sandbox

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// receiptFor waits for the bot's events.Receipt of type typ covering exactly ids.
func receiptFor(t *testing.T, ctx context.Context, b *botClient, from int, typ types.ReceiptType, ids ...string) *events.Receipt {
	t.Helper()
	e, err := b.rec.wait(ctx, from, func(e any) bool {
		r, ok := e.(*events.Receipt)
		return ok && r.Type == typ && slices.Equal(r.MessageIDs, ids)
	})
	if err != nil {
		t.Fatalf("no %q receipt for %v: %v (got %s)", typ, ids, err, describeReceipts(b.rec.since(from)))
	}
	return e.(*events.Receipt)
}

func describeReceipts(evts []any) string {
	var out []string
	for _, e := range evts {
		if r, ok := e.(*events.Receipt); ok {
			out = append(out, fmt.Sprintf("%q%v", r.Type, r.MessageIDs))
		}
	}
	return "receipts " + strings.Join(out, " ")
}

// receiptsSeen lists the bot's receipts of type typ after from, as "id,id".
func receiptsSeen(b *botClient, from int, typ types.ReceiptType) []string {
	var out []string
	for _, e := range b.rec.since(from) {
		if r, ok := e.(*events.Receipt); ok && r.Type == typ {
			out = append(out, strings.Join(r.MessageIDs, ","))
		}
	}
	return out
}

func send(t *testing.T, ctx context.Context, b *botClient, to types.JID, text string) string {
	t.Helper()
	resp, err := b.cli.SendMessage(ctx, to, textMsg(text))
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	return resp.ID
}

func waitSeqEvent(t *testing.T, ctx context.Context, s *Server, kind EventKind, since uint64, detail string) Event {
	t.Helper()
	var found Event
	err := s.WaitFor(ctx, func() bool {
		for _, e := range s.Events() {
			if e.Seq > since && e.Kind == kind && e.Detail == detail {
				found = e
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no %s %q: %v", kind, detail, err)
	}
	return found
}

// The contact's delivery receipt reaches every companion device of the
// account, each acks it, and the server then forgets it.
func TestDeliveryReceiptReachesEveryCompanion(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b1 := pairQR(t, s)
	b2 := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("4915112340001")
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := b1.rec.mark(), b2.rec.mark()
	since := s.LastSeq()
	id := send(t, ctx, b1, alice.JID(), "hello")
	for _, r := range []*events.Receipt{receiptFor(t, ctx, b1, m1, "", id), receiptFor(t, ctx, b2, m2, "", id)} {
		if r.Chat.ToNonAD() != alice.LID() || r.Sender.ToNonAD() != alice.LID() || r.IsFromMe {
			t.Fatalf("receipt from %s in %s (from me %v), want from %s", r.Sender, r.Chat, r.IsFromMe, alice.LID())
		}
	}
	for _, b := range []*botClient{b1, b2} {
		dev := b.cli.Store.ID.String()
		if err := s.WaitFor(ctx, func() bool {
			for _, e := range s.Events() {
				if e.Seq > since && e.Kind == EventReceiptAcked && e.JID == dev && e.Detail == id {
					return true
				}
			}
			return false
		}); err != nil {
			t.Fatalf("device %s never acked the receipt: %v", dev, err)
		}
	}
	waitNothingPending(t, ctx, s)
}

// A receipt the device got but did not ack before its connection ended
// comes again on its next connection.
func TestUnackedReceiptComesAgain(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	// With SynchronousAck whatsmeow acks a receipt after its handlers ran:
	// a handler that blocks keeps the ack back.
	b := pairQRWith(t, s, func(cli *whatsmeow.Client) { cli.SynchronousAck = true })
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("4915112340002")
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var once sync.Once
	defer once.Do(func() { close(release) })
	b.cli.AddEventHandler(func(e any) {
		if _, ok := e.(*events.Receipt); ok {
			<-release
		}
	})
	since := s.LastSeq()
	id := send(t, ctx, b, alice.JID(), "ack me later")
	first := waitSeqEvent(t, ctx, s, EventReceiptToBot, since, id)
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(release) }) // the late ack has no connection to go on
	if n := s.CountEvents(EventReceiptAcked, since); n != 0 {
		t.Fatalf("%d receipt acks from a client whose handler never returned", n)
	}

	b2 := newBot(t, s, b.dbPath)
	if err := b2.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	receiptFor(t, ctx, b2, 0, "", id)
	again := waitSeqEvent(t, ctx, s, EventReceiptToBot, first.Seq, id)
	if again.ConnID == first.ConnID {
		t.Fatalf("the receipt came again on the same connection %d", again.ConnID)
	}
	waitSeqEvent(t, ctx, s, EventReceiptAcked, since, id)
	waitNothingPending(t, ctx, s)
}

// A receipt pushed while the connection is deaf is not lost: it waits for
// the ack it never got and comes on the next connection.
func TestReceiptOnDeafConnectionWaits(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("4915112340003")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Inject(Fault{Kind: FaultDeaf}); err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	since := s.LastSeq()
	id := send(t, ctx, b, alice.JID(), "into the void")
	waitSeqEvent(t, ctx, s, EventPushWithheld, since, "receipt")
	if got := receiptsSeen(b, mark, ""); len(got) != 0 {
		t.Fatalf("the deaf connection pushed receipts %v", got)
	}
	if err := s.Inject(Fault{Kind: FaultDrop}); err != nil {
		t.Fatal(err)
	}
	receiptFor(t, ctx, b, mark, "", id)
}

// A device that is offline gets the contacts' receipts at its next login,
// in order and before the end-of-backlog marker, which counts them; and an
// offline contact's messages are acked but not delivered until it is back.
func TestOfflineContactAndOfflineDevice(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("4915112340004")
	if err != nil {
		t.Fatal(err)
	}
	alice.SetOnline(false)
	mark := b.rec.mark()
	since := s.LastSeq()
	var ids []string
	for _, text := range []string{"one", "two"} {
		ids = append(ids, send(t, ctx, b, alice.JID(), text)) // the server acks: it keeps them
	}
	if in := alice.Inbox(); len(in) != 0 {
		t.Fatalf("an offline contact's inbox shows %+v", in)
	}
	if w := alice.Waiting(); !slices.Equal(w, ids) {
		t.Fatalf("kept for the contact %v, want %v", w, ids)
	}
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	// The connection's handling of the sends is over once it is closed.
	if n := s.CountEvents(EventReceiptToBot, since); n != 0 || len(receiptsSeen(b, mark, "")) != 0 {
		t.Fatalf("%d receipts for messages an offline contact never got", n)
	}
	alice.SetOnline(true)
	in := alice.Inbox()
	if len(in) != 2 || in[0].ID != ids[0] || in[0].Text != "one" || in[1].ID != ids[1] || in[1].Text != "two" {
		t.Fatalf("inbox after coming online %+v, want %v in order", in, ids)
	}
	if len(alice.Waiting()) != 0 {
		t.Fatalf("still kept: %v", alice.Waiting())
	}

	b2 := newBot(t, s, b.dbPath)
	if err := b2.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	done := waitEvent[*events.OfflineSyncCompleted](t, ctx, b2.rec, 0)
	var before []string
	for _, e := range b2.rec.since(0) {
		if e == any(done) {
			break
		}
		if r, ok := e.(*events.Receipt); ok && r.Type == "" {
			before = append(before, strings.Join(r.MessageIDs, ","))
		}
	}
	if !slices.Equal(before, ids) || done.Count != len(ids) {
		t.Fatalf("receipts before the marker %v (count %d), want %v", before, done.Count, ids)
	}
	waitNothingPending(t, ctx, s)
}

// A contact that reads several messages at once sends one read receipt,
// which whatsmeow parses into one events.Receipt with all the IDs; one that
// reads by itself does so after its delay, also once it comes back online.
func TestReadReceipts(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("4915112340005")
	if err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	var ids []string
	for i := range 3 {
		id := send(t, ctx, b, alice.JID(), fmt.Sprintf("read me %d", i))
		receiptFor(t, ctx, b, mark, "", id)
		ids = append(ids, id)
	}
	if got := receiptsSeen(b, mark, types.ReceiptTypeRead); len(got) != 0 {
		t.Fatalf("a contact that reads only when told sent read receipts %v", got)
	}
	if _, err := alice.Read("3EB0NEVERSENT"); err == nil {
		t.Fatal("reading a message never received succeeded")
	}
	read, err := alice.Read()
	if err != nil || !slices.Equal(read, ids) {
		t.Fatalf("read %v (%v), want %v", read, err, ids)
	}
	r := receiptFor(t, ctx, b, mark, types.ReceiptTypeRead, ids...)
	if r.Sender.ToNonAD() != alice.LID() {
		t.Fatalf("read receipt from %s, want %s", r.Sender, alice.LID())
	}
	for _, m := range alice.Inbox() {
		if m.Read.IsZero() {
			t.Fatalf("inbox %s not marked read", m.ID)
		}
	}
	if again, err := alice.Read(); err != nil || len(again) != 0 {
		t.Fatalf("reading again read %v (%v), want nothing", again, err)
	}

	// Reading by itself: at once after delivery, for what waited too, after
	// the delivery receipts.
	alice.SetSettings(ContactSettings{Online: false, ReadReceipts: true, ReadAfter: 0})
	mark = b.rec.mark()
	later := []string{send(t, ctx, b, alice.JID(), "while away 1"), send(t, ctx, b, alice.JID(), "while away 2")}
	alice.SetOnline(true)
	readLater := receiptFor(t, ctx, b, mark, types.ReceiptTypeRead, later...)
	var delivered []string
	for _, e := range b.rec.since(mark) {
		if e == any(readLater) {
			break
		}
		if r, ok := e.(*events.Receipt); ok && r.Type == "" {
			delivered = append(delivered, strings.Join(r.MessageIDs, ","))
		}
	}
	if !slices.Equal(delivered, later) {
		t.Fatalf("delivery receipts before the read one %v, want %v", delivered, later)
	}
}

// A contact with read receipts off reads without telling the account.
func TestReadReceiptsOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{ReadAfter: time.Millisecond})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("4915112340006")
	if err != nil {
		t.Fatal(err)
	}
	if st := alice.Settings(); st.ReadAfter != time.Millisecond || !st.ReadReceipts || !st.Online {
		t.Fatalf("new contact's settings %+v, want the server's ReadAfter", st)
	}
	st := alice.Settings()
	st.ReadReceipts = false
	alice.SetSettings(st)
	mark := b.rec.mark()
	since := s.LastSeq()
	first := send(t, ctx, b, alice.JID(), "seen, silently")
	waitSeqEvent(t, ctx, s, EventContactRead, since, first)
	// Pushes to a device keep their order: a read receipt sent for the
	// first message would come before the second's delivery receipt.
	second := send(t, ctx, b, alice.JID(), "barrier")
	receiptFor(t, ctx, b, mark, "", second)
	if got := receiptsSeen(b, mark, types.ReceiptTypeRead); len(got) != 0 {
		t.Fatalf("read receipts %v from a contact with read receipts off", got)
	}
	if in := alice.Inbox(); in[0].ID != first || in[0].Read.IsZero() {
		t.Fatalf("inbox %+v: the first message is not read", in)
	}
}

// A contact who reinstalls WhatsApp has a new identity: what waited for its
// old install is dropped, the bot hears of the change, and its next message
// reaches the new install.
func TestReinstalledContact(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 40*time.Second)
	alice, err := s.AddContact("4915112340007")
	if err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	before := send(t, ctx, b, alice.JID(), "old phone")
	receiptFor(t, ctx, b, mark, "", before)
	oldKey := *alice.signalDevice().IdentityKey.Pub

	alice.SetOnline(false)
	lost := send(t, ctx, b, alice.JID(), "never arrives")
	mark = b.rec.mark()
	dropped, err := alice.Reinstall(ctx)
	if err != nil || !slices.Equal(dropped, []string{lost}) {
		t.Fatalf("reinstall dropped %v (%v), want %v", dropped, err, lost)
	}
	if *alice.signalDevice().IdentityKey.Pub == oldKey {
		t.Fatal("the reinstalled contact kept its identity key")
	}
	change := waitEvent[*events.IdentityChange](t, ctx, b.rec, mark)
	if change.JID.ToNonAD() != alice.Address() {
		t.Fatalf("identity change of %s, want %s", change.JID, alice.Address())
	}
	alice.SetOnline(true)
	if w := alice.Waiting(); len(w) != 0 {
		t.Fatalf("still kept after reinstall: %v", w)
	}

	since := s.LastSeq()
	after := send(t, ctx, b, alice.JID(), "new phone")
	receiptFor(t, ctx, b, mark, "", after)
	// whatsmeow kept its LID session (reinstall.go): the new install asked
	// for the message again and got it in a new session.
	waitSeqEvent(t, ctx, s, EventRetryRequested, since, after)
	var texts []string
	for _, m := range alice.Inbox() {
		texts = append(texts, m.Text)
	}
	if !slices.Equal(texts, []string{"old phone", "new phone"}) {
		t.Fatalf("inbox %q, want the messages before and after the reinstall only", texts)
	}
	if got := receiptsSeen(b, 0, ""); slices.Contains(got, lost) {
		t.Fatalf("a delivery receipt for %s, dropped with the old install", lost)
	}
}
