package supervisor

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
)

// Dead-but-connected connections.
//
// A connection can stay open, and its keep-alive pings be answered, while
// WhatsApp's side no longer serves it: peers' users report bots that look
// connected but neither send nor receive until restarted. Two signs end such
// a connection, which is then redialled at once like any drop:
//
//   - a message written on it got no ack within Options.AckTimeout
//     (whatsmeow's SendRequestExtra.Timeout, which starts after the write, so
//     a slow encryption for a big group does not count; the sender reports
//     the outcome through AckTimeout and SendEnded, outgoing.AckWatcher);
//   - nothing pushed (messages, receipts, notifications: anything whatsmeow
//     reports as an event) came from the server for Options.SilenceTimeout,
//     while pings and acks may still pass. A quiet account may see nothing
//     for long on a healthy connection too; a redial then costs one login.
//
// While a dead connection is being redialled, and after an unacknowledged
// one until WhatsApp acks a message on the new connection (the same fault
// may hold the new socket), Status.Degraded says why and /readyz is 503.

// deadCause labels blacksky_dead_connections_total.
type deadCause string

const (
	deadUnacked deadCause = "unacked"
	deadSilent  deadCause = "silent"
)

// liveness is what the run loop knows about the current connection's life.
type liveness struct {
	heard atomic.Int64 // UnixNano of the last thing the server sent that whatsmeow reported
}

func (l *liveness) hear(t time.Time) { l.heard.Store(t.UnixNano()) }

// silentFor is how long the server has sent nothing whatsmeow reported.
func (l *liveness) silentFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, l.heard.Load()))
}

// fromServer reports whether whatsmeow dispatches evt for something the
// server sent, as opposed to its own keep-alive verdicts and socket state.
func fromServer(evt any) bool {
	switch evt.(type) {
	case *events.KeepAliveTimeout, *events.KeepAliveRestored, *events.Disconnected,
		*events.QR, *events.PairSuccess, *events.PairError, *events.ManualLoginReconnect:
		return false
	}
	return true
}

// AckTimeout is how long a sender waits for WhatsApp's ack of a message
// once written (outgoing.AckWatcher); 0 leaves whatsmeow's default.
func (s *Supervisor) AckTimeout() time.Duration { return s.opts.AckTimeout }

// SendEnded is told how each send through the current client ended: nil
// when WhatsApp acked it. A send that timed out waiting for its ack ends
// the connection as dead; an ack proves a suspect connection alive.
func (s *Supervisor) SendEnded(err error) {
	switch {
	case err == nil:
		// An ack proves sends work, not that pushes arrive: a deaf
		// connection acks, so acks do not count as heard.
		s.setDegraded(deadUnacked, "")
	case errors.Is(err, whatsmeow.ErrMessageTimedOut) && s.opts.AckTimeout > 0 && s.Status().State == Connected:
		s.send(signal{kind: sigDead, cause: deadUnacked,
			reason: fmt.Sprintf("dead connection: WhatsApp acknowledged no message within %s", s.opts.AckTimeout)})
	}
}

// silenceTicks returns a channel that ticks often enough to notice
// SilenceTimeout, or nil when the check is off.
func (s *Supervisor) silenceTicks() (<-chan time.Time, func()) {
	if s.opts.SilenceTimeout <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(max(s.opts.SilenceTimeout/4, 10*time.Millisecond))
	return t.C, t.Stop
}

// silent returns the outcome for a connection that has been silent too
// long, if it has.
func (s *Supervisor) silent(now time.Time) (outcome, bool) {
	if s.Status().State != Connected {
		return outcome{}, false
	}
	d := s.live.silentFor(now)
	if d < s.opts.SilenceTimeout {
		return outcome{}, false
	}
	return outcome{kind: sigDead, cause: deadSilent, reason: fmt.Sprintf(
		"dead connection: nothing received from WhatsApp for %s although pings are answered", d.Round(time.Second))}, true
}

// onDead counts a dead connection and marks the account degraded until the
// redial proves itself: by logging in after silence, by an ack after
// unacknowledged sends.
func (s *Supervisor) onDead(out outcome) {
	s.log.Warn("ending a dead connection", "cause", out.cause, "reason", out.reason)
	if m := s.opts.Metrics; m != nil {
		m.DeadConnections.WithLabelValues(string(out.cause)).Inc()
	}
	s.setDegraded(out.cause, out.reason)
}

// setDegraded sets Status.Degraded to reason for cause, or clears it when
// reason is empty and it was set for cause.
func (s *Supervisor) setDegraded(cause deadCause, reason string) {
	s.change(func(st *Status, _ *Pairing) bool {
		if reason == "" && (st.Degraded == "" || s.degradedBy != cause) {
			return false
		}
		st.Degraded, s.degradedBy = reason, cause
		return true
	})
}
