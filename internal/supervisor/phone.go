package supervisor

import (
	"context"
	"fmt"
	"math"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// The primary phone. WhatsApp unlinks the linked devices of an account whose
// phone has been offline for about 14 days, and tells a linked device
// nothing of the phone's presence: what the device observes is the phone's
// own traffic, stamped by the server with when it happened. So the phone is
// "seen" at the time of each message from its device 0 (it sent a message,
// shared a key, answered a request) and of each receipt from it (it
// delivered or read a message), and when it links the device. The newest
// such time is kept in the database (store.PhoneSeen: it only moves
// forward), shown as Status.PhoneLastSeen, and checked at every connect and
// every PhoneCheckInterval: past PhoneWarnAfter the owner is alerted once,
// until the phone is seen again.

// Defaults of the phone's Options.
const (
	DefaultPhoneWarnAfter     = 10 * 24 * time.Hour
	DefaultPhoneCheckInterval = time.Hour
)

// phoneWatch carries what the event goroutine saw of the phone to watchPhone.
type phoneWatch struct {
	seen  chan time.Time
	check chan struct{}
}

func newPhoneWatch() phoneWatch {
	return phoneWatch{seen: make(chan time.Time, 64), check: make(chan struct{}, 1)}
}

// notePhone picks the phone's activity out of a whatsmeow event; it runs on
// the event goroutine and does not block (a full queue drops a sighting,
// which a later one makes up for).
func (s *Supervisor) notePhone(evt any) {
	var at time.Time
	switch e := evt.(type) {
	case *events.Message:
		// A copy the phone sent again carries the original message's time, not the phone's.
		if !e.Info.IsFromMe || !fromPhone(e.Info.Sender) || e.UnavailableRequestID != "" || e.SourceWebMsg != nil {
			return
		}
		at = e.Info.Timestamp
	case *events.Receipt:
		if !e.IsFromMe || !fromPhone(e.Sender) {
			return
		}
		at = e.Timestamp
	case *events.PairSuccess:
		at = time.Now() // the phone just scanned the code
	case *events.Connected:
		select {
		case s.phone.check <- struct{}{}:
		default:
		}
		return
	default:
		return
	}
	if now := time.Now(); at.IsZero() || at.After(now) {
		at = now // a clock ahead of ours must not hide later sightings
	}
	select {
	case s.phone.seen <- at:
	default:
	}
}

// fromPhone reports whether jid is the account's primary device.
func fromPhone(jid types.JID) bool {
	return jid.Device == 0 && (jid.Server == types.DefaultUserServer || jid.Server == types.HiddenUserServer)
}

// startPhoneWatch runs watchPhone until ctx ends or the returned stop is called.
func (s *Supervisor) startPhoneWatch(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.watchPhone(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// watchPhone records sightings of the phone and checks its last one.
func (s *Supervisor) watchPhone(ctx context.Context) {
	s.checkPhone(ctx)
	tick := time.NewTicker(s.opts.PhoneCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case at := <-s.phone.seen:
			s.recordPhone(ctx, at)
		case <-s.phone.check:
			s.checkPhone(ctx)
		case <-tick.C:
			s.checkPhone(ctx)
		}
	}
}

// phoneDBTimeout bounds each database call of the phone's bookkeeping.
const phoneDBTimeout = 10 * time.Second

func (s *Supervisor) recordPhone(ctx context.Context, at time.Time) {
	dbCtx, cancel := context.WithTimeout(ctx, phoneDBTimeout)
	err := s.opts.Store.PhoneSeen(dbCtx, s.opts.SessionID, at)
	cancel()
	if err != nil {
		s.log.Warn("could not record the phone's activity", "at", at, "err", err)
		return
	}
	s.checkPhone(ctx)
}

// checkPhone shows the stored last sighting in Status and warns the owner
// once when it is older than PhoneWarnAfter.
func (s *Supervisor) checkPhone(ctx context.Context) {
	dbCtx, cancel := context.WithTimeout(ctx, phoneDBTimeout)
	defer cancel()
	p, ok, err := s.opts.Store.Phone(dbCtx, s.opts.SessionID)
	if err != nil {
		s.log.Warn("could not read the phone's last activity", "err", err)
		return
	}
	if !ok {
		return
	}
	last := p.LastSeen
	s.update(func(st *Status, _ *Pairing) { st.PhoneLastSeen = &last })
	away := time.Since(last)
	if p.Warned || away < s.opts.PhoneWarnAfter {
		return
	}
	made, err := s.opts.Store.MarkPhoneWarned(dbCtx, s.opts.SessionID, last)
	if err != nil {
		s.log.Warn("could not record the phone warning", "err", err)
		return
	}
	if made {
		s.alert(ctx, fmt.Sprintf("The phone of this account was last seen %s (%d days ago). WhatsApp unlinks linked devices "+
			"after about 14 days without the phone: open WhatsApp on the phone.", last.UTC().Format(time.RFC3339), int(math.Floor(away.Hours()/24))))
	}
}
