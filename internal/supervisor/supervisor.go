package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.mau.fi/whatsmeow"
	wastore "go.mau.fi/whatsmeow/store"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/logging"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// Options configures a Supervisor.
type Options struct {
	Store     *store.Store
	SessionID string
	// LeaseToken names the lease holding this connection runs under
	// (lease.Lease.Token): its sends' session writes fail once another
	// holding has begun (store.FencedDevice). Empty fences nothing.
	LeaseToken string
	Logger     *slog.Logger
	Metrics    *metrics.Metrics // optional
	Backoff    backoff.Policy
	// MaxRetries stops reconnecting after this many failed attempts in a row; 0 is forever.
	MaxRetries int
	// PairPhone asks for a pairing code for this number instead of relying on a QR scan.
	PairPhone string
	// Configure is applied to every whatsmeow client before it connects (the sandbox uses it).
	Configure func(*whatsmeow.Client) error
	// ReplacedBackoff is the least time to wait after another client took the account.
	ReplacedBackoff time.Duration
	// KeepAliveMaxFail ends a connection whose keep-alive pings went
	// unanswered for this long.
	KeepAliveMaxFail time.Duration
	// AckTimeout ends a connection on which WhatsApp acknowledged no message
	// within this long after it was written (liveness.go); 0 is off.
	AckTimeout time.Duration
	// SilenceTimeout ends a connection on which the server pushed nothing
	// (no event; keep-alive answers and acks do not count) for this long
	// (liveness.go); 0 is off.
	SilenceTimeout time.Duration
	// ProbeInterval is how often, while waiting to reconnect, to check
	// whether WhatsApp answers again, so a short outage does not cost a long
	// backoff; 0 disables probing.
	ProbeInterval time.Duration
	// ProbeClient makes the probe requests and fetches WhatsApp Web's
	// current version after a 405 (version.go); it must reach the same
	// server as whatsmeow (the sandbox supplies its own). Nil means
	// http.DefaultClient.
	ProbeClient *http.Client
	// PinnedVersion, if not zero, is the WhatsApp Web client version to
	// present (WA_VERSION) instead of whatsmeow's built-in one; it is never
	// replaced by a fetched one.
	PinnedVersion wastore.WAVersionContainer
	// AlertAfter is how long reconnecting may last before the owner is alerted; 0 never alerts.
	AlertAfter time.Duration
	// Alert delivers an owner alert (logged out, banned, outdated, replaced,
	// a long outage); it must not block for long.
	Alert func(ctx context.Context, text string)
	// OnState, if set, is called after every state change with the new
	// status, and OnPairing after every change of the pairing with the new
	// pairing. Both run outside the supervisor's lock but one at a time, in
	// the order of the changes; they must return quickly (the connection
	// waits for them) and must not call RequestPairCode.
	OnState   func(Status)
	OnPairing func(Pairing)
	// OnChange, if set, is called after any change of status or pairing.
	OnChange func()
	// OnEvent, if set, receives every whatsmeow event of every client the
	// supervisor creates; it runs on whatsmeow's event goroutine and must be quick.
	OnEvent func(evt any)
	// PhoneWarnAfter is how long the primary phone may go unseen before the
	// owner is alerted (phone.go); default DefaultPhoneWarnAfter.
	PhoneWarnAfter time.Duration
	// PhoneCheckInterval is how often the phone's last activity is checked
	// besides at every connect; default DefaultPhoneCheckInterval.
	PhoneCheckInterval time.Duration
}

// Supervisor runs one account's connection.
type Supervisor struct {
	opts Options
	log  *slog.Logger

	signals chan signal // whatsmeow events, in arrival order, for the run loop
	live    liveness

	// hooks orders the calls of OnState, OnPairing and OnChange as the
	// changes they report; it is taken before mu, never under it.
	hooks   sync.Mutex
	mu      sync.Mutex
	cli     *whatsmeow.Client
	status  Status
	pairing Pairing
	changed chan struct{} // closed and replaced on every change
	alerts  []Alert       // the newest maxAlerts owner alerts
	// degradedBy is what set status.Degraded, so only its proof clears it.
	degradedBy deadCause

	phone phoneWatch // sightings of the primary phone (phone.go)

	notice notices // what the operator was already told (notice.go)
}

// maxAlerts bounds the alerts kept for /status.
const maxAlerts = 10

// Alert is a message to the owner about something that needs a human.
type Alert struct {
	Time time.Time `json:"time"`
	Text string    `json:"text"`
}

// Alerts returns the newest owner alerts, oldest first.
func (s *Supervisor) Alerts() []Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Alert(nil), s.alerts...)
}

// ErrGaveUp is returned by Run when MaxRetries attempts in a row failed.
var ErrGaveUp = errors.New("gave up reconnecting")

// New loads the account's session from the store and prepares a client; it
// does not connect.
func New(ctx context.Context, opts Options) (*Supervisor, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReplacedBackoff == 0 {
		opts.ReplacedBackoff = 30 * time.Second
	}
	if opts.KeepAliveMaxFail == 0 {
		opts.KeepAliveMaxFail = time.Minute
	}
	if opts.PhoneWarnAfter <= 0 {
		opts.PhoneWarnAfter = DefaultPhoneWarnAfter
	}
	if opts.PhoneCheckInterval <= 0 {
		opts.PhoneCheckInterval = DefaultPhoneCheckInterval
	}
	s := &Supervisor{
		opts:    opts,
		log:     opts.Logger.With("session", opts.SessionID),
		signals: make(chan signal, 64),
		changed: make(chan struct{}),
		status:  Status{State: Connecting, Reason: "starting", Since: time.Now()},
		phone:   newPhoneWatch(),
	}
	s.pairing.CodePhone = opts.PairPhone
	s.publishState(s.status.State)
	s.usePinnedVersion()
	if err := s.newClient(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Supervisor) newClient(ctx context.Context) error {
	dev, err := s.opts.Store.FencedDevice(ctx, s.opts.SessionID, s.opts.LeaseToken)
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	cli := whatsmeow.NewClient(dev, logging.WhatsApp(s.opts.Logger))
	// We reconnect ourselves: whatsmeow's own loop is linear, uncapped and
	// unjittered, and would race ours into two attempts at once.
	cli.EnableAutoReconnect = false
	// whatsmeow's own reconnect after a 515 reports nothing when it fails;
	// this makes it hand the reconnect to us instead.
	cli.DisableLoginAutoReconnect = true
	// A message this device cannot decrypt is asked for from the phone too,
	// not only from its sender, who may be offline or keep failing.
	cli.AutomaticMessageRerequestFromPhone = true
	if s.opts.Configure != nil {
		if err := s.opts.Configure(cli); err != nil {
			return fmt.Errorf("configure client: %w", err)
		}
	}
	cli.AddEventHandler(s.onEvent)
	s.mu.Lock()
	s.cli = cli
	s.pairing.Paired = dev.ID != nil
	s.pairing.Account = ""
	if dev.ID != nil {
		s.pairing.Account = dev.ID.String()
	}
	s.status.Account = s.pairing.Account
	s.mu.Unlock()
	return nil
}

// Client returns the current whatsmeow client; it changes after a logout.
func (s *Supervisor) Client() *whatsmeow.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cli
}

// Status returns a snapshot of the connection's state.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Pairing returns what is needed to pair the account, if it is not paired.
func (s *Supervisor) Pairing() Pairing {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pairing
}

// WaitFor blocks until cond holds for the status or ctx ends.
func (s *Supervisor) WaitFor(ctx context.Context, cond func(Status, Pairing) bool) error {
	for {
		s.mu.Lock()
		ok, ch := cond(s.status, s.pairing), s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for connection state: %w", ctx.Err())
		case <-ch:
		}
	}
}

// update changes status and pairing under the lock, wakes waiters, and
// tells the hooks.
func (s *Supervisor) update(f func(st *Status, p *Pairing)) {
	s.change(func(st *Status, p *Pairing) bool { f(st, p); return false })
}

// change is update whose f says whether the state changed, for OnState.
// The hooks get the status and pairing f left, not a later one.
func (s *Supervisor) change(f func(st *Status, p *Pairing) (stateChanged bool)) {
	s.hooks.Lock()
	defer s.hooks.Unlock()
	s.mu.Lock()
	before := s.pairing
	stateChanged := f(&s.status, &s.pairing)
	status, pairing := s.status, s.pairing
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	if stateChanged && s.opts.OnState != nil {
		s.opts.OnState(status)
	}
	if pairing != before && s.opts.OnPairing != nil {
		s.opts.OnPairing(pairing)
	}
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// setState enters a state, logging and counting the transition.
func (s *Supervisor) setState(state State, reason string, f func(st *Status)) {
	var from State
	s.change(func(st *Status, _ *Pairing) bool {
		from = st.State
		*st = Status{State: state, Reason: reason, Since: time.Now(), Account: st.Account,
			Degraded: st.Degraded, PhoneLastSeen: st.PhoneLastSeen}
		if f != nil {
			f(st)
		}
		return true
	})
	if from != state {
		s.log.Info("connection state", "from", from, "to", state, "reason", reason)
		if m := s.opts.Metrics; m != nil {
			m.Transitions.WithLabelValues(string(state)).Inc()
		}
		s.publishState(state)
	}
}

// publishState sets the state gauge: 1 for state, 0 for all others, so a
// dashboard sees every state from the first scrape on.
func (s *Supervisor) publishState(state State) {
	m := s.opts.Metrics
	if m == nil {
		return
	}
	for _, st := range AllStates {
		v := 0.0
		if st == state {
			v = 1
		}
		m.ConnectionState.WithLabelValues(string(st)).Set(v)
	}
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	return time.Duration(rand.Float64() * float64(d))
}
