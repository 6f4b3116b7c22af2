// Package account runs one WhatsApp account in this process: it waits as a
// hot standby until it holds the account's lease, then drives the
// connection, and stops that connection the moment the lease is lost.
package account

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/lease"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// Options configures a Runner.
type Options struct {
	Store     *store.Store
	SessionID string
	HolderID  string        // names this process; lease.HolderID() by default
	Poll      time.Duration // how often a standby tries to take the lease
	Lease     lease.Options
	// Backoff spaces the attempts to start again after the database failed
	// while the account started (1 s doubling to 30 s by default).
	Backoff backoff.Policy
	Logger  *slog.Logger
	// Supervisor configures each connection; Store, SessionID and OnChange are set by the Runner.
	Supervisor supervisor.Options
	// Prepare, if set, runs each time this process takes the lease, before
	// it connects (restoring a missing session belongs here); an error stops Run.
	Prepare func(ctx context.Context) error
	// OnLeader, if set, runs beside the connection while this process holds
	// the lease, and is stopped (its context cancelled) when it stops.
	OnLeader func(ctx context.Context, sup *supervisor.Supervisor)
	// OnStop, if set, runs after a clean shutdown has closed the connection,
	// while the lease is still held (a final backup belongs here).
	OnStop func(ctx context.Context)
}

// Runner is one account's life in this process.
type Runner struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	sup     *supervisor.Supervisor // nil while on standby
	standby *lease.Holder          // who holds the lease while we wait
	changed chan struct{}
}

// New prepares a Runner; Run starts it.
func New(opts Options) *Runner {
	if opts.HolderID == "" {
		opts.HolderID = lease.HolderID()
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Backoff.Base <= 0 {
		opts.Backoff = backoff.Policy{Base: time.Second, Max: 30 * time.Second}
	}
	return &Runner{opts: opts, log: opts.Logger, changed: make(chan struct{})}
}

// Run holds the lease and the connection until ctx ends, giving both back
// (without logging out) before it returns. A lost lease, and a database
// that fails while the account starts (store.IsUnavailable), send it back to
// waiting for the lease, after a backoff for the latter: a passing database
// fault never ends the process. Other errors end Run.
func (r *Runner) Run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		lopts := r.opts.Lease
		lopts.OnError = func(err error) {
			r.log.Warn("cannot take the account lease yet; retrying", "err", err)
			r.set(nil, &lease.Holder{})
		}
		lopts.OnTakeover = func(prev string, d time.Duration) {
			r.log.Warn("the last holder of the account lease did not give it back; waiting until it has certainly stopped before connecting",
				"previous", prev, "wait", d)
		}
		l, err := lease.Acquire(ctx, r.opts.Store, r.opts.SessionID, r.opts.HolderID, r.opts.Poll, lopts, r.onStandby)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.log.Info("holding the account lease; connecting", "holder", r.opts.HolderID)
		lost, err := r.lead(ctx, l)
		switch {
		case lost:
			r.log.Error("lost the account lease (its database connection broke, or its lock file was replaced); stopped the connection at once",
				"help", troubleshoot.Lease)
			l.Release()
			failures = 0
			continue
		case err != nil && store.IsUnavailable(err) && ctx.Err() == nil:
			d := r.opts.Backoff.Delay(failures)
			failures++
			r.log.Error("the database failed while the account started; giving the lease back and trying again", "err", err, "retry_in", d)
			if relErr := l.Release(); relErr != nil {
				r.log.Warn("release account lease", "err", relErr)
			}
			if !sleep(ctx, d) {
				return nil
			}
			continue
		}
		if relErr := l.Release(); relErr != nil {
			r.log.Warn("release account lease", "err", relErr)
		}
		return err
	}
	return nil
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// lead drives the connection while the lease holds; it reports whether it
// stopped because the lease was lost.
func (r *Runner) lead(ctx context.Context, l *lease.Lease) (lost bool, err error) {
	if r.opts.Prepare != nil {
		if err := r.opts.Prepare(ctx); err != nil {
			return false, err
		}
	}
	opts := r.opts.Supervisor
	opts.Store, opts.SessionID, opts.OnChange = r.opts.Store, r.opts.SessionID, r.notify
	opts.LeaseToken = l.Token()
	sup, err := supervisor.New(ctx, opts)
	if err != nil {
		return false, err
	}
	r.set(sup, nil)
	defer r.set(nil, &lease.Holder{})

	// The connection outlives the leader's work on a normal shutdown, so
	// in-flight sends can finish; on a lost lease both stop at once.
	supCtx, stopSup := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSup()
	leadCtx, stopLead := context.WithCancel(ctx)
	defer stopLead()
	var wg sync.WaitGroup
	if r.opts.OnLeader != nil {
		wg.Go(func() { r.opts.OnLeader(leadCtx, sup) })
	}
	done := make(chan error, 1)
	go func() { done <- sup.Run(supCtx) }()
	select {
	case err = <-done:
		stopLead()
		wg.Wait()
	case <-l.Lost():
		lost = true
		stopSup()
		stopLead()
		err = <-done
		wg.Wait()
	case <-ctx.Done():
		stopLead()
		wg.Wait()
		stopSup()
		err = <-done
		if r.opts.OnStop != nil {
			r.opts.OnStop(context.WithoutCancel(ctx))
		}
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return lost, err
}

func (r *Runner) onStandby(h lease.Holder) {
	r.log.Warn("another process holds this account; waiting as a hot standby", "holder", h.ID, "since", h.Since, "help", troubleshoot.Lease)
	r.set(nil, &h)
}

func (r *Runner) set(sup *supervisor.Supervisor, standby *lease.Holder) {
	r.mu.Lock()
	r.sup, r.standby = sup, standby
	r.mu.Unlock()
	r.notify()
}

func (r *Runner) notify() {
	r.mu.Lock()
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Supervisor returns the connection's supervisor while this process leads.
func (r *Runner) Supervisor() *supervisor.Supervisor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sup
}

// Status reports the connection, or the standby and who holds the lease.
func (r *Runner) Status() supervisor.Status {
	r.mu.Lock()
	sup, standby := r.sup, r.standby
	r.mu.Unlock()
	if sup != nil {
		st := sup.Status()
		st.Holder = r.opts.HolderID
		return st
	}
	if standby == nil {
		return supervisor.Status{State: supervisor.Connecting, Reason: "starting", Since: time.Now()}
	}
	st := supervisor.Status{State: supervisor.Standby, Reason: "waiting for the account lease", Since: time.Now()}
	if standby.ID != "" {
		st.Reason = "another process holds the account"
		st.Holder = standby.ID
		st.Since = standby.Since
	}
	return st
}

// Pairing reports the pairing state while leading; a standby does not pair.
func (r *Runner) Pairing() supervisor.Pairing {
	if sup := r.Supervisor(); sup != nil {
		return sup.Pairing()
	}
	return supervisor.Pairing{}
}

// Alerts returns the connection's owner alerts while leading.
func (r *Runner) Alerts() []supervisor.Alert {
	if sup := r.Supervisor(); sup != nil {
		return sup.Alerts()
	}
	return nil
}

// RequestPairCode asks for a pairing code while leading.
func (r *Runner) RequestPairCode(ctx context.Context, phone string) (string, error) {
	if sup := r.Supervisor(); sup != nil {
		return sup.RequestPairCode(ctx, phone)
	}
	return "", supervisor.ErrNotPairing
}

// WaitFor blocks until cond holds for the runner's status and pairing, or ctx ends.
func (r *Runner) WaitFor(ctx context.Context, cond func(supervisor.Status, supervisor.Pairing) bool) error {
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond(r.Status(), r.Pairing()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
