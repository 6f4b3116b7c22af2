package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
)

// Event kinds of the account's connection and pairing (AccountEvents).
const (
	// KindAccountState: the connection's state or its reason changed (AccountState).
	KindAccountState = "account.state"
	// KindAccountQR: a new QR code to scan to link the bot (AccountQR).
	KindAccountQR = "account.qr"
	// KindAccountPairCode: a new code to type on the phone to link the bot (AccountPairCode).
	KindAccountPairCode = "account.pair_code"
	// KindAccountPaired: a phone linked the bot as a device (AccountPaired).
	KindAccountPaired = "account.paired"
	// KindAccountLoggedOut: WhatsApp ended the session; the bot must be
	// paired again (AccountLoggedOut). An account.state logged_out comes too.
	KindAccountLoggedOut = "account.logged_out"
)

// AccountState is the payload of account.state, in the words of /status.
type AccountState struct {
	// State is the supervisor's state: connecting, connected, reconnecting,
	// unpaired, logged_out, banned, outdated, replaced or stopped (a
	// process on standby has no connection and reports nothing).
	State string `json:"state"`
	// Reason says why, in the same words as /status.
	Reason string `json:"reason,omitempty"`
	// Degraded says why a connection that may be up is not trusted yet
	// (/status's degraded); a change of it alone is no event.
	Degraded string `json:"degraded,omitempty"`
	// Account is the device JID once paired.
	Account string `json:"account,omitempty"`
	// Time is when the state was entered (/status's since).
	Time time.Time `json:"time"`
}

// AccountQR is the payload of account.qr.
//
// It carries the code itself, as WAHA and Evolution API do: a bot on a
// headless host is paired from it, and the body goes only to the
// operator's own URL, signed. Whoever reads it can link a device to the
// account until Expires (about 60 s for the first code, 20 s for later
// ones), so a receiver must treat it as a secret: not log it, not store it
// past Expires. blacksky itself never logs it with the event.
type AccountQR struct {
	// QR is the text to render as a QR code and scan in WhatsApp (Linked devices).
	QR string `json:"qr"`
	// Expires is when WhatsApp stops accepting this code; a new one follows.
	Expires time.Time `json:"expires"`
}

// AccountPairCode is the payload of account.pair_code: the code to type on
// the phone of Phone (Linked devices > Link with phone number). Like a QR
// code it links a device while it is valid: treat it as a secret.
type AccountPairCode struct {
	Code  string    `json:"code"`
	Phone string    `json:"phone"`
	Time  time.Time `json:"time"`
}

// AccountPaired is the payload of account.paired.
type AccountPaired struct {
	// Account is the JID of the bot's new device.
	Account string    `json:"account"`
	Time    time.Time `json:"time"`
}

// AccountLoggedOut is the payload of account.logged_out.
type AccountLoggedOut struct {
	// Reason is WhatsApp's, as in /status.
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// AccountPairing is what AccountEvents reads of the account's pairing (the
// supervisor's Pairing).
type AccountPairing struct {
	Paired    bool
	Account   string
	QR        string
	QRExpires time.Time
	Code      string
	CodePhone string
}

// stateLoggedOut is the supervisor's state word for a session WhatsApp ended.
const stateLoggedOut = "logged_out"

// DefaultAccountBuffer is how many account events wait for the database at most.
const DefaultAccountBuffer = 256

// AccountEvents turns the account's state and pairing, as reported after
// each change, into webhook events, and stores them from one goroutine
// (Run), oldest first. Reporting never waits for the database: the
// connection that reports must not stall on a slow or failing one. While
// the database fails, events wait in a bounded buffer and the write is
// retried with backoff; when the buffer is full the oldest event is
// dropped, logged and counted (Dropped), so the newest state always gets
// through. Events still waiting when Run ends are lost.
//
// Each event has an ID of its own (kind, the time in ms, and a counter), and
// a write retried after an error keeps it, so a retried write stores the
// event once. A report that changes nothing an event says (the same state
// and reason, the same QR code) is no event.
type AccountEvents struct {
	c     *Client
	log   *slog.Logger
	retry backoff.Policy
	ready chan struct{} // an event was added

	mu         sync.Mutex
	state      AccountState   // the last state reported
	pairing    AccountPairing // the last pairing reported
	pairKnown  bool           // pairing holds a report
	seq        uint64         // events made
	buf        []accountEvent // waiting to be stored, oldest first
	max        int
	dropped    uint64
	droppedNow uint64 // since the last store, for the log
}

type accountEvent struct {
	seq      uint64
	id, kind string
	payload  any
}

// AccountEvents returns the account events of this webhook, buffering up to
// buffer events for the database (DefaultAccountBuffer if <= 0).
func (c *Client) AccountEvents(buffer int) *AccountEvents {
	if buffer <= 0 {
		buffer = DefaultAccountBuffer
	}
	return &AccountEvents{c: c, log: c.log, max: buffer, ready: make(chan struct{}, 1),
		retry: backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}}
}

// State reports the connection's status after a change; it is an
// account.state event when the state or the reason differs from the last
// one reported, and also account.logged_out when the state is logged_out.
func (a *AccountEvents) State(s AccountState) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.State == a.state.State && s.Reason == a.state.Reason {
		return
	}
	a.state = s
	s.Time = s.Time.UTC()
	a.add(KindAccountState, s.State, s.Time, s)
	if s.State == stateLoggedOut {
		a.add(KindAccountLoggedOut, "", s.Time, AccountLoggedOut{Reason: s.Reason, Time: s.Time})
	}
}

// Pairing reports the account's pairing after a change: a QR code or a
// pairing code not reported before is an event, and so is becoming paired
// after a report of being unpaired (the first report of a paired account
// only says where it is).
func (a *AccountEvents) Pairing(p AccountPairing) {
	now := a.c.opts.Now().UTC()
	a.mu.Lock()
	defer a.mu.Unlock()
	last, known := a.pairing, a.pairKnown
	a.pairing, a.pairKnown = p, true
	if p.QR != "" && (p.QR != last.QR || !p.QRExpires.Equal(last.QRExpires)) {
		a.add(KindAccountQR, "", p.QRExpires, AccountQR{QR: p.QR, Expires: p.QRExpires.UTC()})
	}
	if p.Code != "" && (p.Code != last.Code || p.CodePhone != last.CodePhone) {
		a.add(KindAccountPairCode, "", now, AccountPairCode{Code: p.Code, Phone: p.CodePhone, Time: now})
	}
	if p.Paired && known && !last.Paired {
		a.add(KindAccountPaired, "", now, AccountPaired{Account: p.Account, Time: now})
	}
}

// AccountEventID is the ID of the seq-th account event of kind, about
// something (a state word, or empty) at t: unique per happening across
// restarts (the time) and within one process (the counter), and free of
// the event's secrets.
func AccountEventID(kind, about string, t time.Time, seq uint64) string {
	id := kind
	if about != "" {
		id += "." + about
	}
	return fmt.Sprintf("%s_%d_%d", id, t.UnixMilli(), seq)
}

// add queues an event; a.mu is held.
func (a *AccountEvents) add(kind, about string, t time.Time, payload any) {
	a.seq++
	a.buf = append(a.buf, accountEvent{seq: a.seq, id: AccountEventID(kind, about, t, a.seq), kind: kind, payload: payload})
	if len(a.buf) > a.max {
		old := a.buf[0]
		a.buf = a.buf[1:]
		a.dropped++
		a.droppedNow++
		if a.droppedNow == 1 {
			a.log.Error("webhook: account events are piling up while the database fails; dropping the oldest",
				"kind", old.kind, "id", old.id, "buffer", a.max)
		}
	}
	select {
	case a.ready <- struct{}{}:
	default:
	}
}

// Dropped is how many events were dropped because the buffer was full.
func (a *AccountEvents) Dropped() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}

// Run stores the events as they come, oldest first, until ctx ends. Each
// write is bounded by Options.Timeout; a failed one is retried, under the
// same ID, after a backoff of up to 5 s, and said once per outage.
func (a *AccountEvents) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		e, ok := a.head()
		if !ok {
			select {
			case <-ctx.Done():
			case <-a.ready:
			}
			continue
		}
		err := a.store(ctx, e)
		switch {
		case err == nil:
			a.stored(e, failures)
			failures = 0
		case errors.Is(err, ErrInvalid):
			a.log.Error("webhook: account event refused; dropped", "kind", e.kind, "id", e.id, "err", err)
			a.stored(e, failures)
		case ctx.Err() == nil:
			if failures == 0 {
				a.log.Error("webhook: store account event; retrying", "kind", e.kind, "id", e.id, "err", err)
			}
			failures++
			sleep(ctx, a.retry.Delay(failures-1))
		}
	}
}

func (a *AccountEvents) store(ctx context.Context, e accountEvent) error {
	ctx, cancel := context.WithTimeout(ctx, a.c.opts.Timeout)
	defer cancel()
	return a.c.EnqueueID(ctx, a.c.db, e.id, e.kind, e.payload)
}

// head is the oldest waiting event.
func (a *AccountEvents) head() (accountEvent, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.buf) == 0 {
		return accountEvent{}, false
	}
	return a.buf[0], true
}

// stored takes e off the buffer, unless it was dropped meanwhile, and says
// that storing works again after failures.
func (a *AccountEvents) stored(e accountEvent, failures int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.buf) > 0 && a.buf[0].seq == e.seq {
		a.buf = a.buf[1:]
	}
	if failures > 0 || a.droppedNow > 0 {
		a.log.Info("webhook: account events stored again", "failed_attempts", failures, "dropped", a.droppedNow)
	}
	a.droppedNow = 0
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
