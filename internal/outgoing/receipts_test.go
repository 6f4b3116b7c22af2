package outgoing

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// steps records what Settled was given: "id:state", in order.
type steps struct {
	mu  sync.Mutex
	got []string
}

func (s *steps) settled(_ context.Context, _ *sql.Tx, msgs []Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		s.got = append(s.got, fmt.Sprintf("%d:%s", m.ID, m.State))
	}
	return nil
}

func (s *steps) of(id int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, g := range s.got {
		var n int64
		var state string
		fmt.Sscanf(g, "%d:%s", &n, &state)
		if n == id {
			out = append(out, state)
		}
	}
	return out
}

// sentMessage enqueues a message to chat and has it sent; it returns it as sent.
func sentMessage(t *testing.T, q *Queue, chat, text string) Message {
	t.Helper()
	m := mustEnqueue(t, q, chat, text)
	stop := run(t, q, &recorder{}, NewSwitchGate(true))
	m = waitState(t, q, m.ID, Sent)
	stop()
	return m
}

func receipt(m Message, state State, at time.Time) Receipt {
	return Receipt{IDs: []string{m.WAID}, Chat: m.To, Sender: m.To, State: state, At: at}
}

func record(t *testing.T, q *Queue, r Receipt) {
	t.Helper()
	if err := q.RecordReceipt(context.Background(), r); err != nil {
		t.Fatalf("RecordReceipt(%s %v): %v", r.State, r.IDs, err)
	}
}

// Each receipt moves a sent message one step on, with its time, and each
// step is reported once, however often a receipt comes.
func TestReceiptsMoveASentMessageOnOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		var st steps
		q := e.queue(t, Options{Settled: st.settled})
		m := sentMessage(t, q, chatJID(1), "hello")
		at := m.SentAt.Add(2 * time.Second).Truncate(time.Second)
		record(t, q, receipt(m, Delivered, at))
		record(t, q, receipt(m, Delivered, at.Add(time.Second))) // the same device again
		got, _ := q.Get(context.Background(), m.ID)
		if got.State != Delivered || !got.DeliveredAt.Equal(at) {
			t.Fatalf("after delivery: %s at %v, want delivered at %v", got.State, got.DeliveredAt, at)
		}
		record(t, q, receipt(m, Read, at.Add(time.Minute)))
		record(t, q, receipt(m, Read, at.Add(time.Minute)))
		got, _ = q.Get(context.Background(), m.ID)
		if got.State != Read || !got.ReadAt.Equal(at.Add(time.Minute)) || !got.DeliveredAt.Equal(at) {
			t.Fatalf("after reading: %+v", got)
		}
		if s := st.of(m.ID); !slices.Equal(s, []string{"sent", "delivered", "read"}) {
			t.Errorf("steps reported %v; want sent, delivered, read once each", s)
		}
		rs, err := q.Receipts(context.Background(), m.ID)
		if err != nil || len(rs) != 2 || rs[0].State != Delivered || !rs[0].At.Equal(at) || rs[1].State != Read || rs[1].Sender != m.To {
			t.Errorf("stored receipts %+v, %v; want the delivery and the read, once each", rs, err)
		}
		for _, c := range []struct {
			state State
			want  int
		}{{Read, 1}, {Sent, 0}, {Delivered, 0}} {
			list, err := q.List(context.Background(), Filter{State: c.state})
			if err != nil || len(list) != c.want {
				t.Errorf("List(state=%s) = %d messages, %v; want %d", c.state, len(list), err, c.want)
			}
		}
		d, err := q.Depths(context.Background())
		if err != nil || d[Read] != 1 || d[Sent] != 0 || d[Delivered] != 0 {
			t.Errorf("depths %v, %v; want the message counted as read only", d, err)
		}
	})
}

// A read receipt without a delivery receipt before it (they race, or the
// delivery receipt was lost) makes the message delivered too: a device
// that read it has it. Played does the same and does not imply read.
func TestReadBeforeDeliveredReportsBothSteps(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		var st steps
		q := e.queue(t, Options{Settled: st.settled})
		m := sentMessage(t, q, chatJID(1), "hello")
		at := m.SentAt.Add(time.Minute)
		record(t, q, receipt(m, Read, at))
		record(t, q, receipt(m, Delivered, at.Add(-30*time.Second)))
		got, _ := q.Get(context.Background(), m.ID)
		if got.State != Read || !got.DeliveredAt.Equal(at) {
			t.Errorf("read first: %s, delivered at %v; want read, delivered at the read's time %v", got.State, got.DeliveredAt, at)
		}
		if s := st.of(m.ID); !slices.Equal(s, []string{"sent", "delivered", "read"}) {
			t.Errorf("steps %v; want sent, delivered, read", s)
		}
		voice := sentMessage(t, q, chatJID(2), "a voice note, once media exist")
		record(t, q, receipt(voice, Played, at))
		if got, _ := q.Get(context.Background(), voice.ID); got.State != Played || !got.ReadAt.IsZero() || got.DeliveredAt.IsZero() {
			t.Errorf("played: %+v; want played and delivered, not read", got)
		}
	})
}

// A receipt can beat the message's sent record (the recipient's device is
// faster than our commit after the server's ack): it is kept and applied
// when the sent record commits, in the same transaction.
func TestReceiptBeforeTheSentRecordIsAppliedWithIt(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		var st steps
		q := e.queue(t, Options{Settled: st.settled})
		m := mustEnqueue(t, q, chatJID(1), "hello")
		at := time.Now().Add(time.Hour).Truncate(time.Second) // later than the ack to come; WhatsApp's times are seconds
		release := make(chan struct{})
		r := &recorder{fail: func(ctx context.Context, _ Message, _ int) error {
			<-release
			return nil
		}}
		run(t, q, r, NewSwitchGate(true))
		waitState(t, q, m.ID, Sending)
		record(t, q, receipt(m, Delivered, at))
		record(t, q, receipt(m, Read, at.Add(time.Second)))
		if got, _ := q.Get(context.Background(), m.ID); got.State != Sending {
			t.Fatalf("a receipt moved a message not yet recorded sent to %s", got.State)
		}
		close(release)
		got := waitState(t, q, m.ID, Read)
		if !got.DeliveredAt.Equal(at) {
			t.Errorf("delivered at %v, want %v", got.DeliveredAt, at)
		}
		if s := st.of(m.ID); !slices.Equal(s, []string{"sent", "delivered", "read"}) {
			t.Errorf("steps %v; want sent, delivered, read", s)
		}
	})
}

// A receipt is applied by whichever process holds the account later, even
// one that did not send the message; receipts for messages that are not
// ours (the phone's) or that name another chat are not stored.
func TestReceiptsOfOtherProcessesAndOtherChats(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		sender := e.queue(t, Options{})
		m := sentMessage(t, sender, chatJID(1), "from a previous process")
		later := e.queue(t, Options{})
		at := m.SentAt.Add(time.Second)
		forged := receipt(m, Read, at)
		forged.Chat = chatJID(2)
		record(t, later, forged)
		record(t, later, Receipt{IDs: []string{"3EB0PHONESOWN"}, Chat: chatJID(1), Sender: chatJID(1), State: Delivered, At: at})
		if got, _ := later.Get(context.Background(), m.ID); got.State != Sent {
			t.Fatalf("a receipt from another chat moved the message to %s", got.State)
		}
		record(t, later, receipt(m, Delivered, at))
		if got, _ := later.Get(context.Background(), m.ID); got.State != Delivered {
			t.Errorf("after the recipient's receipt: %s, want delivered", got.State)
		}
		var n int
		if err := later.db.QueryRow("SELECT count(*) FROM blacksky_receipts").Scan(&n); err != nil || n != 1 {
			t.Errorf("%d receipts stored (%v); want only the recipient's", n, err)
		}
		if err := later.RecordReceipt(context.Background(), Receipt{IDs: []string{m.WAID}, State: Sent}); err == nil {
			t.Error("a receipt saying sent was accepted")
		}
	})
}

// WhatsApp may name a phone-number chat by its LID in the receipt.
func TestReceiptFromTheLIDOfAPhoneNumberChat(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		m := sentMessage(t, q, chatJID(1), "hello")
		lidMap(t, q.db, chatJID(1), "123456789012345")
		r := receipt(m, Delivered, m.SentAt)
		r.Chat, r.Sender = "123456789012345@lid", "123456789012345:3@lid"
		record(t, q, r)
		if got, _ := q.Get(context.Background(), m.ID); got.State != Delivered || got.ToLID != r.Chat {
			t.Errorf("receipt from the LID: %s (to_lid %q), want delivered", got.State, got.ToLID)
		}
		// A LID whatsmeow has not learnt yet may be the chat's; one it
		// knows as another number's is not.
		unknown := sentMessage(t, q, chatJID(2), "to a number whose LID is not known yet")
		r = receipt(unknown, Delivered, unknown.SentAt)
		r.Chat = "999999999999999@lid"
		record(t, q, r)
		other := sentMessage(t, q, chatJID(3), "to a number")
		r = receipt(other, Delivered, other.SentAt)
		r.Chat = "123456789012345@lid" // chatJID(1)'s
		record(t, q, r)
		if a, _ := q.Get(context.Background(), unknown.ID); a.State != Delivered {
			t.Errorf("receipt from a LID not known yet: %s, want delivered", a.State)
		}
		if b, _ := q.Get(context.Background(), other.ID); b.State != Sent {
			t.Errorf("receipt from another number's LID: %s, want sent", b.State)
		}
	})
}

// lidMap records in whatsmeow's LID map that the phone-number chat has lid.
func lidMap(t *testing.T, db *sql.DB, chat, lid string) {
	t.Helper()
	pn, _, _ := strings.Cut(chat, "@")
	if _, err := db.Exec("INSERT INTO whatsmeow_lid_map (lid, pn) VALUES ($1, $2)", lid, pn); err != nil {
		t.Fatal(err)
	}
}

// The watchdog flags a sent message no receipt reached within the delivery
// timeout, once, and a receipt that comes later still moves it on.
func TestWatchdogFlagsUndeliveredMessages(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		var st steps
		clk := newFakeClock()
		q := e.queue(t, Options{Settled: st.settled, Now: clk.Now, DeliveryTimeout: time.Minute})
		quiet := sentMessage(t, q, chatJID(1), "to a phone that is off")
		prompt := sentMessage(t, q, chatJID(2), "to a phone that is on")
		record(t, q, receipt(prompt, Delivered, prompt.SentAt))
		if n, err := q.flagUndelivered(context.Background()); err != nil || n != 0 {
			t.Fatalf("before the timeout: %d flagged, %v", n, err)
		}
		clk.Advance(time.Minute)
		for range 2 {
			if _, err := q.flagUndelivered(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := q.Get(context.Background(), quiet.ID)
		if got.State != Undelivered || !got.UndeliveredAt.Equal(clk.Now().Truncate(time.Millisecond)) {
			t.Fatalf("after the timeout: %s at %v", got.State, got.UndeliveredAt)
		}
		if got, _ := q.Get(context.Background(), prompt.ID); got.State != Delivered {
			t.Errorf("the delivered message became %s", got.State)
		}
		record(t, q, receipt(quiet, Delivered, clk.Now()))
		if got, _ := q.Get(context.Background(), quiet.ID); got.State != Delivered || got.UndeliveredAt.IsZero() {
			t.Errorf("late receipt: %s (flagged at %v); want delivered, the flag's time kept", got.State, got.UndeliveredAt)
		}
		if s := st.of(quiet.ID); !slices.Equal(s, []string{"sent", "undelivered", "delivered"}) {
			t.Errorf("steps %v; want sent, undelivered, delivered", s)
		}
	})
}

// The dispatcher runs the watchdog by itself, and a timeout of -1 turns it off.
func TestDispatcherRunsTheWatchdog(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{DeliveryTimeout: 200 * time.Millisecond})
		m := mustEnqueue(t, q, chatJID(1), "nobody gets this")
		run(t, q, &recorder{}, NewSwitchGate(true))
		waitState(t, q, m.ID, Undelivered)

		off := e.queue(t, Options{DeliveryTimeout: -1, Session: "off"})
		m2 := mustEnqueue(t, off, chatJID(1), "no watchdog")
		stop := run(t, off, &recorder{}, NewSwitchGate(true))
		waitState(t, off, m2.ID, Sent)
		if n, err := off.flagUndelivered(context.Background()); err != nil || n != 0 {
			t.Errorf("watchdog off flagged %d, %v", n, err)
		}
		stop()
	})
}

// After the recipient's identity changed, its messages that no device
// reported having are sent again under the same WhatsApp IDs, before its
// later messages; delivered ones and other chats' are left alone.
func TestResendUndeliveredAfterIdentityChange(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{})
		lost := sentMessage(t, q, chatJID(1), "encrypted for the old phone")
		arrived := sentMessage(t, q, chatJID(1), "delivered before the change")
		record(t, q, receipt(arrived, Delivered, arrived.SentAt))
		other := sentMessage(t, q, chatJID(2), "another chat")
		lidMap(t, q.db, chatJID(1), "123456789012345")
		if n, err := q.ResendUndelivered(context.Background(), "123456789012345@lid", lost.SentAt.Add(-time.Millisecond)); err != nil || n != 0 {
			t.Fatalf("ResendUndelivered before the message was sent = %d, %v; want none", n, err)
		}
		n, err := q.ResendUndelivered(context.Background(), "123456789012345@lid", time.Now())
		if err != nil || n != 1 {
			t.Fatalf("ResendUndelivered = %d, %v; want the one undelivered message", n, err)
		}
		next := mustEnqueue(t, q, chatJID(1), "after the change")
		r := &recorder{}
		run(t, q, r, NewSwitchGate(true))
		waitState(t, q, next.ID, Sent)
		var got []string
		for _, s := range r.delivered() {
			got = append(got, s.WAID)
		}
		if !slices.Equal(got, []string{lost.WAID, next.WAID}) {
			t.Errorf("sent %v; want the lost message again under its ID %s, then the next", got, lost.WAID)
		}
		if m, _ := q.Get(context.Background(), other.ID); m.State != Sent || !m.SentAt.Equal(other.SentAt) {
			t.Errorf("another chat's message was touched: %+v", m)
		}
	})
}
