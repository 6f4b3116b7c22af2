package outgoing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/store"
)

const (
	// pruneInterval is how often the dispatcher deletes sent rows past Retention.
	pruneInterval = time.Hour
	// expireInterval is how often the dispatcher sweeps expired messages to
	// dead; in between, a message is found expired when it is claimed.
	expireInterval = time.Minute
	// finishTimeout bounds recording a send's outcome, also during shutdown.
	finishTimeout = 10 * time.Second
	// maxErrorWait caps the pause after repeated database errors.
	maxErrorWait = 30 * time.Second
)

// Run delivers the queue's messages through sender while gate is open,
// until ctx ends. Up to Workers chats are sent to at once, each chat's
// messages one at a time in order. Nothing is claimed while the gate is
// closed, and a claimed message is re-checked against the gate right
// before its send. When ctx ends Run stops claiming, hands back claimed
// messages not yet being sent, lets sends under way finish for up to
// ShutdownGrace (then cancels and hands them back too), and returns nil.
// Database errors are logged and retried, never returned. One Run per
// Queue at a time; several processes may each run one on a shared
// PostgreSQL database.
func (q *Queue) Run(ctx context.Context, sender Sender, gate Gate) error {
	if !q.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer q.running.Store(false)
	// What this holding learnt of the reach-out lock ends with it.
	defer q.reachout.forget()
	// Sends run on a context that outlives ctx, so a shutdown lets them
	// finish instead of leaving their outcome unknown.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	d := &dispatcher{
		q: q, sender: sender, gate: gate, log: q.log,
		sendCtx: sendCtx,
		done:    make(chan struct{}, q.opts.Workers),
	}
	q.analyze(ctx)
	if err := q.resumeReachout(ctx); err != nil {
		d.log.Error("reading back the reach-out lock failed; waiting messages still wait", "err", err)
	}
	dbErrors := 0
	for {
		d.reap()
		if ctx.Err() != nil {
			break
		}
		if !gate.Open() {
			d.log.Debug("send gate closed; delivery paused")
			if err := gate.WaitOpen(ctx); err != nil && ctx.Err() == nil {
				d.log.Error("waiting for the send gate failed", "err", err)
				d.pause(ctx, q.opts.PollInterval)
			}
			continue
		}
		d.prune(ctx)
		wait, more, err := d.round(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			dbErrors++
			wait = backoff.Policy{Base: q.opts.PollInterval, Max: maxErrorWait}.Ceiling(dbErrors - 1)
			d.log.Error("outgoing dispatch failed; retrying", "err", err, "in", wait)
		} else {
			dbErrors = 0
			if more {
				continue
			}
		}
		timer := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
		case <-q.wake:
		case <-d.done:
			d.inflight--
		case <-timer.C:
		}
		timer.Stop()
	}
	if d.inflight > 0 {
		d.log.Info("outgoing stopping; waiting for sends under way", "in_flight", d.inflight, "grace", q.opts.ShutdownGrace)
	}
	grace := time.AfterFunc(q.opts.ShutdownGrace, cancelSends)
	defer grace.Stop()
	d.wg.Wait()
	return nil
}

// analyze refreshes PostgreSQL's statistics on the outgoing queue at start, when
// a restart may meet a backlog that grew since autovacuum last looked.
// The claim queries do not depend on them; listing and counting do.
func (q *Queue) analyze(ctx context.Context) {
	if q.engine != store.Postgres {
		return
	}
	if _, err := q.db.ExecContext(ctx, "ANALYZE blacksky_outbox"); err != nil {
		q.log.Warn("analyze outgoing table failed", "err", err)
	}
}

// dispatcher is the state of one Run; only Run's goroutine touches the
// fields below sendCtx.
type dispatcher struct {
	q       *Queue
	sender  Sender
	gate    Gate
	log     *slog.Logger
	sendCtx context.Context // ends when the shutdown grace runs out

	wg                    sync.WaitGroup
	done                  chan struct{} // one token per finished delivery
	inflight              int
	lastExpire, lastPrune time.Time // wall-clock throttles, independent of opts.Now
	lastWatch             time.Time
}

// reap counts finished deliveries without blocking.
func (d *dispatcher) reap() {
	for {
		select {
		case <-d.done:
			d.inflight--
		default:
			return
		}
	}
}

// prune deletes sent rows past Retention, hourly.
func (d *dispatcher) prune(ctx context.Context) {
	if time.Since(d.lastPrune) < pruneInterval {
		return
	}
	d.lastPrune = time.Now()
	if n, err := d.q.Prune(ctx); err != nil {
		d.log.Warn("prune failed", "err", err)
	} else if n > 0 {
		d.log.Info("pruned sent messages past retention", "count", n, "retention", d.q.opts.Retention)
	}
}

// round claims what free workers, the rate limit and the chats' order
// allow and starts delivering it. It reports whether more may be due right
// away, and otherwise how long to sleep at most before looking again.
func (d *dispatcher) round(ctx context.Context) (wait time.Duration, more bool, err error) {
	q := d.q
	wait = min(q.opts.PollInterval, q.watchInterval())
	if err := d.reachoutChores(ctx); err != nil {
		return 0, false, err
	}
	if time.Since(d.lastWatch) >= q.watchInterval() {
		if _, err := q.flagUndelivered(ctx); err != nil {
			return 0, false, err
		}
		d.lastWatch = time.Now()
	}
	if time.Since(d.lastExpire) >= expireInterval {
		if err := q.expire(ctx); err != nil {
			return 0, false, err
		}
		d.lastExpire = time.Now()
	}
	free := q.opts.Workers - d.inflight
	if free <= 0 || (d.inflight > 0 && free < max(1, q.opts.Workers/4)) {
		// A claim costs about the same for one message as for several:
		// while plenty is in flight, wait for a few workers to come free.
		return wait, false, nil // a finishing delivery wakes us
	}
	budget, until, err := q.rateBudget(ctx)
	if err != nil {
		return 0, false, err
	}
	if !until.IsZero() {
		wait = min(wait, until.Sub(q.now()))
	}
	wanted := min(free, budget)
	if wanted > 0 {
		msgs, err := q.claim(ctx, wanted)
		if err != nil {
			return 0, false, err
		}
		for _, m := range msgs {
			d.inflight++
			d.wg.Go(func() {
				d.deliver(ctx, d.sendCtx, m)
				d.done <- struct{}{}
			})
		}
		if len(msgs) == wanted {
			return 0, true, nil
		}
	}
	next, err := q.nextDue(ctx)
	if err != nil {
		return 0, false, err
	}
	if !next.IsZero() {
		wait = min(wait, next.Sub(q.now()))
	}
	return wait, false, nil
}

// pause waits for d or ctx.
func (d *dispatcher) pause(ctx context.Context, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// deliver sends one claimed message and records the outcome. runCtx ending
// means shutdown; sendCtx ends only when the shutdown grace runs out.
func (d *dispatcher) deliver(runCtx, sendCtx context.Context, m Message) {
	q := d.q
	// The outcome must be written even while shutting down.
	dbCtx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), finishTimeout)
	defer cancel()
	log := d.log.With("id", m.ID, "wa_id", m.WAID, "to", m.To, "attempt", m.Attempts)
	switch {
	case runCtx.Err() != nil:
		d.handBack(dbCtx, log, m, "shutting down")
		return
	case !d.gate.Open():
		d.handBack(dbCtx, log, m, "send gate closed")
		return
	case q.now().Sub(m.QueuedAt) >= q.opts.TTL:
		d.kill(dbCtx, log, m, reasonExpired, expiredReason(q.opts.TTL))
		return
	case m.Attempts > q.opts.MaxAttempts:
		// Only claims of a message whose sender died mid-send get here.
		d.kill(dbCtx, log, m, reasonMaxAttempts, fmt.Sprintf("gave up after %d attempts (OUTGOING_MAX_ATTEMPTS); last error: %s", q.opts.MaxAttempts, orUnknown(m.LastError)))
		return
	case d.reachoutHeld(dbCtx, log, m):
		return
	}
	ctx, cancelSend := context.WithTimeout(sendCtx, q.opts.SendTimeout)
	began := q.reachout.mark()
	err := d.sender.Send(ctx, m)
	cancelSend()
	if err == nil {
		q.stats.sends.Add(1)
		if ok, err := q.markSent(dbCtx, m); err != nil {
			// The lease will run out and the message be sent again with the
			// same WhatsApp ID, which the recipient sees only once.
			log.Error("message sent but not recorded; it will be re-sent under the same ID", "err", err)
		} else if !ok {
			log.Warn("message sent after its lease was lost to another process")
		} else {
			log.Debug("message sent")
		}
		d.reachedNewChat(dbCtx, m, began)
		return
	}
	switch {
	case errors.Is(err, ErrReachoutLocked):
		// WhatsApp's answer, not a failure of the message: no attempt, never dead.
		until := q.reachout.refused(began, q.now())
		log.Warn("WhatsApp refused the message: the account's reach-out lock is in force", "until", until)
		d.waitOutLock(dbCtx, log, m, until, err.Error())
	case IsPermanent(err):
		q.stats.failures.Add(1)
		d.kill(dbCtx, log, m, reasonPermanent, err.Error())
	case sendCtx.Err() != nil:
		d.handBack(dbCtx, log, m, "shutdown grace ran out during the send")
	case !d.gate.Open():
		// The connection went away under the send: not the message's fault.
		d.handBack(dbCtx, log, m, "send gate closed during the send: "+err.Error())
	case m.Attempts >= q.opts.MaxAttempts:
		q.stats.failures.Add(1)
		d.kill(dbCtx, log, m, reasonMaxAttempts, fmt.Sprintf("gave up after %d attempts (OUTGOING_MAX_ATTEMPTS); last error: %s", m.Attempts, err))
	default:
		q.stats.failures.Add(1)
		delay := q.opts.Backoff.Delay(m.Attempts - 1)
		if ok, ferr := q.reschedule(dbCtx, m, err.Error(), q.now().Add(delay)); ferr != nil {
			log.Error("recording a failed send failed; the lease will bring it back", "err", ferr, "send_err", err)
		} else if ok {
			q.stats.retries.Add(1)
			log.Warn("send failed; will retry", "err", err, "in", delay)
		}
	}
}

func (d *dispatcher) kill(ctx context.Context, log *slog.Logger, m Message, reason, detail string) {
	ok, err := d.q.markDead(ctx, m, detail)
	if err != nil {
		log.Error("recording a dead message failed; the lease will bring it back", "err", err, "reason", detail)
		return
	}
	if ok {
		d.q.stats.dead(reason, 1)
		log.Warn("message is dead", "reason", detail)
	}
}

func (d *dispatcher) handBack(ctx context.Context, log *slog.Logger, m Message, why string) {
	ok, err := d.q.handBack(ctx, m)
	if err != nil {
		log.Error("handing back a claimed message failed; its lease will run out", "err", err, "why", why)
		return
	}
	if ok {
		d.q.stats.handedBack.Add(1)
		log.Info("message handed back unsent", "why", why)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown (the sending process stopped)"
	}
	return s
}
