package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow"
)

// outcome is how one connection ended.
type outcome struct {
	kind   signalKind
	reason string
	expire time.Duration
}

// sigQRExpired ends a pairing connection whose QR codes all went unscanned.
const sigQRExpired signalKind = -1

// Run connects and keeps the account connected until ctx ends, then
// disconnects without logging out. It returns nil after ctx ends, or an
// error when it gave up.
func (s *Supervisor) Run(ctx context.Context) error {
	defer s.shutdown()
	failures := 0
	for ctx.Err() == nil {
		cli := s.Client()
		if m := s.opts.Metrics; m != nil {
			m.ConnectAttempts.Inc()
		}
		if failures == 0 {
			s.setState(Connecting, "dialing WhatsApp", nil)
		}
		if err := cli.ConnectContext(ctx); err != nil && !errors.Is(err, whatsmeow.ErrAlreadyConnected) {
			if ctx.Err() != nil {
				break
			}
			if m := s.opts.Metrics; m != nil {
				m.ConnectFailures.Inc()
			}
			failures++
			if err := s.retryAfter(ctx, failures, "connect: "+err.Error()); err != nil {
				return err
			}
			continue
		}
		out := s.await(ctx, cli)
		if ctx.Err() != nil {
			break
		}
		// Whatever ended the connection, no socket may linger: after
		// "replaced" in particular, keeping it would fight the other client.
		cli.Disconnect()
		switch out.kind {
		case sigQRExpired, sigRestart:
			failures = 0
		case sigDropped:
			// A connection that drops soon after connecting counts as one
			// more failure in a row, so a flapping link still backs off.
			if st := s.Status(); st.State == Connected && time.Since(st.Since) >= s.opts.HealthyAfter {
				failures = 0
			}
			failures++
			if err := s.retryAfter(ctx, failures, out.reason); err != nil {
				return err
			}
		case sigLoggedOut:
			s.onLoggedOut(ctx, out.reason)
			failures = 0
		case sigReplaced:
			wait := s.opts.ReplacedBackoff + jitter(s.opts.ReplacedBackoff)
			s.waitIn(ctx, Replaced, out.reason, wait)
		case sigBanned:
			s.waitIn(ctx, Banned, out.reason, out.expire)
		case sigOutdated:
			s.setState(Outdated, out.reason, nil)
			s.log.Error("WhatsApp says this client is outdated; upgrade blacksky and restart")
			<-ctx.Done()
		}
	}
	return nil
}

// retryAfter waits the backoff delay for the n-th failure in a row.
func (s *Supervisor) retryAfter(ctx context.Context, n int, reason string) error {
	if s.opts.MaxRetries > 0 && n > s.opts.MaxRetries {
		s.setState(Stopped, fmt.Sprintf("gave up after %d attempts: %s", s.opts.MaxRetries, reason), nil)
		return fmt.Errorf("%w after %d attempts: %s", ErrGaveUp, s.opts.MaxRetries, reason)
	}
	delay := s.opts.Backoff.Delay(n - 1)
	next := time.Now().Add(delay)
	s.setState(Reconnecting, reason, func(st *Status) {
		st.Attempt = n
		st.NextAttempt = &next
	})
	s.log.Warn("reconnecting", "attempt", n, "in", delay.Round(time.Millisecond), "reason", reason)
	sleep(ctx, delay)
	return nil
}

// waitIn enters a state that waits a fixed time before the next attempt.
func (s *Supervisor) waitIn(ctx context.Context, state State, reason string, wait time.Duration) {
	next := time.Now().Add(wait)
	s.setState(state, reason, func(st *Status) {
		st.NextAttempt = &next
		if state == Banned {
			st.BanExpires = &next
		}
	})
	s.log.Error("connection stopped; will try again", "state", state, "reason", reason, "retry_in", wait.Round(time.Second))
	sleep(ctx, wait)
}

// await follows one open connection until it ends.
func (s *Supervisor) await(ctx context.Context, cli *whatsmeow.Client) outcome {
	var qr qrRotation
	defer qr.stop()
	for {
		select {
		case <-ctx.Done():
			return outcome{}
		case <-qr.expired():
			if qr.next() {
				s.showQR(qr.current(), qr.deadline)
				continue
			}
			s.log.Info("QR codes expired unscanned; fetching new ones")
			cli.Disconnect()
			return outcome{kind: sigQRExpired}
		case sig := <-s.signals:
			switch sig.kind {
			case sigConnected:
				s.setState(Connected, "logged in", nil)
			case sigQR:
				qr.start(sig.codes)
				s.showQR(qr.current(), qr.deadline)
				s.maybeRequestCode(ctx, cli)
			case sigPaired:
				qr.stop()
				s.setState(Connecting, "paired; logging in", nil)
			case sigDropped:
				if cli.IsConnected() && sig.reason == reasonClosed {
					// A Disconnected event of an earlier socket that
					// arrived after this one connected.
					continue
				}
				return outcome{kind: sig.kind, reason: sig.reason}
			default:
				return outcome{kind: sig.kind, reason: sig.reason, expire: sig.expire}
			}
		}
	}
}

// onLoggedOut forgets the dead session and prepares a fresh device, so the
// next connection shows the pairing flow again.
func (s *Supervisor) onLoggedOut(ctx context.Context, reason string) {
	s.setState(LoggedOut, reason, nil)
	s.log.Error("WhatsApp logged this device out; pair again with the QR code in the logs or on /pair", "reason", reason)
	if err := s.opts.Store.UnbindAccount(ctx, s.opts.SessionID); err != nil {
		s.log.Error("forget logged-out account", "err", err)
	}
	s.Client().RemoveEventHandlers()
	s.update(func(st *Status, p *Pairing) {
		st.Account = ""
		*p = Pairing{CodePhone: p.CodePhone}
	})
	if err := s.newClient(ctx); err != nil {
		s.log.Error("prepare new device after logout", "err", err)
	}
}

func (s *Supervisor) shutdown() {
	// Disconnect, never Logout: logging out would unlink the device and
	// force the operator to scan a QR code after every restart.
	s.Client().Disconnect()
	s.setState(Stopped, "shut down", nil)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
