package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
)

// isReachoutNotice matches the whatsmeow event of the lock's state.
func isReachoutNotice(active bool) func(any) bool {
	return func(e any) bool {
		n, ok := e.(*events.NotifyAccountReachoutTimelock)
		return ok && n.IsActive == active
	}
}

func waitReachoutNotice(t *testing.T, ctx context.Context, b *botClient, mark int, active bool) *events.NotifyAccountReachoutTimelock {
	t.Helper()
	e, err := b.rec.wait(ctx, mark, isReachoutNotice(active))
	if err != nil {
		t.Fatalf("waiting for a reach-out lock notice (active %v): %v (got %s)", active, err, describe(b.rec.since(mark)))
	}
	return e.(*events.NotifyAccountReachoutTimelock)
}

// wroteToBot has ct write to the bot and waits until the bot has it.
func wroteToBot(t *testing.T, ctx context.Context, b *botClient, ct *Contact) {
	t.Helper()
	mark := b.rec.mark()
	if _, err := ct.Send(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Message](t, ctx, b.rec, mark)
}

func is463(err error) bool {
	return errors.Is(err, whatsmeow.ErrServerReturnedError) && strings.HasSuffix(err.Error(), " 463")
}

// While the lock is in force, a message to a contact who never wrote is
// refused with 463 and reaches nobody, a message to one who wrote goes
// through, and lifting the lock early tells the device and lets new
// contacts be written to again.
func TestReachoutTimelockRefusesNewContactsOnly(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	known, err := s.AddContact("4915111111111")
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := s.AddContact("4915122222222")
	if err != nil {
		t.Fatal(err)
	}
	wroteToBot(t, ctx, b, known)

	mark := b.rec.mark()
	injected := time.Now()
	if err := s.Inject(Fault{Kind: FaultReachoutTimelock, Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	notice := waitReachoutNotice(t, ctx, b, mark, true)
	if notice.EnforcementType != reachoutEnforcement || notice.Mex.OpName != reachoutOpName {
		t.Errorf("notice = %+v, want enforcement %s, op %s", notice, reachoutEnforcement, reachoutOpName)
	}
	if ends := notice.TimeEnforcementEnds.Time; ends.Before(injected.Add(time.Hour-time.Second)) || ends.After(injected.Add(time.Hour+2*time.Second)) {
		t.Errorf("lock ends %s, want an hour after %s", ends, injected)
	}

	resp, err := b.cli.SendMessage(ctx, stranger.JID(), textMsg("cold"))
	if !is463(err) {
		t.Fatalf("send to a contact who never wrote: err = %v, want server error 463", err)
	}
	if in := stranger.Inbox(); len(in) != 0 {
		t.Errorf("refused message reached the contact: %+v", in)
	}
	for _, m := range s.PhoneInbox() {
		if m.ID == resp.ID {
			t.Errorf("refused message reached the phone: %+v", m)
		}
	}
	if _, err := b.cli.SendMessage(ctx, known.JID(), textMsg("reply")); err != nil {
		t.Fatalf("send to a contact who wrote: %v", err)
	}
	if err := s.WaitFor(ctx, func() bool { return len(known.Inbox()) == 1 }); err != nil {
		t.Fatal(err)
	}

	mark = b.rec.mark()
	s.ClearFaults()
	waitReachoutNotice(t, ctx, b, mark, false)
	if _, err := b.cli.SendMessage(ctx, stranger.JID(), textMsg("warm")); err != nil {
		t.Fatalf("send after the lock was lifted: %v", err)
	}
	if in := stranger.Inbox(); len(in) != 1 || in[0].Text != "warm" {
		t.Errorf("stranger's inbox = %+v, want only the message sent after the lock", in)
	}
}

// A lock that runs out is over at its announced end without a word, as
// nothing shows WhatsApp says anything then: the client must go by the time.
func TestReachoutTimelockEndsAtItsAnnouncedTime(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	stranger, err := s.AddContact("4915133333333")
	if err != nil {
		t.Fatal(err)
	}
	mark := b.rec.mark()
	if err := s.Inject(Fault{Kind: FaultReachoutTimelock, Duration: time.Second}); err != nil {
		t.Fatal(err)
	}
	ends := waitReachoutNotice(t, ctx, b, mark, true).TimeEnforcementEnds.Time
	if _, err := b.cli.SendMessage(ctx, stranger.JID(), textMsg("too early")); !is463(err) {
		t.Fatalf("send during the lock: err = %v, want server error 463", err)
	}
	// The lock ends at a time, not on an event: wait for that time.
	select {
	case <-time.After(time.Until(ends)):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if _, err := b.cli.SendMessage(ctx, stranger.JID(), textMsg("on time")); err != nil {
		t.Fatalf("send at the announced end: %v", err)
	}
	if n := s.CountEvents(EventReachoutNotified, 0); n != 1 {
		t.Errorf("%d lock notifications, want only the one at the start", n)
	}
}

// A device that is offline when the lock begins is told at its next login,
// once: a notification it acked is not handed over again.
func TestReachoutTimelockNoticeWaitsForAnOfflineDevice(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Inject(Fault{Kind: FaultReachoutTimelock, Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}

	mark := b.rec.mark()
	seq := s.LastSeq()
	if err := b.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	waitReachoutNotice(t, ctx, b, mark, true)
	waitNothingPending(t, ctx, s) // the device acked it
	if e, err := s.WaitEvent(ctx, EventOfflineDelivered, seq); err != nil || e.Detail != "1" {
		t.Fatalf("offline backlog at the first login = %+v (%v), want the one notification", e, err)
	}

	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	seq = s.LastSeq()
	if err := b.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	if e, err := s.WaitEvent(ctx, EventOfflineDelivered, seq); err != nil || e.Detail != "0" {
		t.Fatalf("offline backlog at the next login = %+v (%v), want nothing", e, err)
	}
}
