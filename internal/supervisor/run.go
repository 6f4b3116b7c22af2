package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mau.fi/util/exhttp"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/socket"

	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// outcome is how one connection ended.
type outcome struct {
	kind   signalKind
	reason string
	expire time.Duration
	cause  deadCause
}

// sigQRExpired ends a pairing connection whose QR codes all went unscanned.
const sigQRExpired signalKind = -1

// outage tracks failures in a row since the account was last connected.
type outage struct {
	failures int
	start    time.Time
	alerted  bool
	network  bool   // the last failure was a network-level one (nothing answered)
	why      string // what ended the last connection that had logged in (redialled at once)
}

// Run connects and keeps the account connected until ctx ends, then
// disconnects without logging out. It returns nil after ctx ends, or an
// error when it gave up.
func (s *Supervisor) Run(ctx context.Context) error {
	defer s.shutdown()
	defer s.startPhoneWatch(ctx)()
	var o outage
	limit := newAttemptLimit(time.Now())
	for ctx.Err() == nil {
		// Every attempt that may reach a server takes a token: one that
		// kills connections around their login, sometimes before whatsmeow
		// reports it and sometimes after, would otherwise see a reset
		// backoff alternate with immediate redials
		// (TestKillingServerIsNotHammered). An attempt after one that
		// nothing answered is spaced by the backoff and the probe already,
		// and waiting for a token there would only delay the return after
		// an outage (BenchmarkRecoveryLag, outage 3 s after a recovery).
		if !o.network && !limit.wait(ctx) {
			break
		}
		cli := s.Client()
		if m := s.opts.Metrics; m != nil {
			m.ConnectAttempts.Inc()
		}
		if o.failures == 0 {
			reason := "dialing WhatsApp"
			if o.why != "" {
				reason = "redialling after: " + o.why
			}
			s.setState(Connecting, reason, nil)
		}
		if err := cli.ConnectContext(ctx); err != nil && !errors.Is(err, whatsmeow.ErrAlreadyConnected) {
			if ctx.Err() != nil {
				break
			}
			if m := s.opts.Metrics; m != nil {
				m.ConnectFailures.Inc()
			}
			o.network = isNetworkError(err)
			s.outageStarted(o.network, shortCause(err))
			if err := s.retryAfter(ctx, &o, "connect: "+err.Error()); err != nil {
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
		if err := s.handle(ctx, &o, out); err != nil {
			return err
		}
	}
	return nil
}

// handle decides what follows the end of a connection.
//
// When the backoff grows and resets: every attempt that fails before login
// (connect errors, a connection closed before it logged in) counts, and the
// wait before the next one is Backoff.Delay of that count; a login ends the
// outage and resets the count, so a connection that logged in and then
// dropped is redialled at once, however briefly it lasted. What keeps a
// server that accepts and kills every connection from being hammered is the
// attempt limit on every attempt that may reach it (attempts.go): at most
// attemptBurst at once, and one per attemptInterval after that.
func (s *Supervisor) handle(ctx context.Context, o *outage, out outcome) error {
	loggedIn := s.Status().State == Connected
	if loggedIn {
		*o = outage{}
	}
	switch out.kind {
	case sigLoggedOut, sigReplaced, sigBanned, sigOutdated:
		s.outageEnded() // WhatsApp answered, if only to refuse
	}
	switch out.kind {
	case sigQRExpired, sigRestart:
		o.failures = 0
	case sigDead:
		s.onDead(out)
		o.why = out.reason
	case sigDropped:
		if loggedIn {
			o.why = out.reason
			return nil
		}
		o.network = false
		s.outageStarted(false, out.reason)
		return s.retryAfter(ctx, o, out.reason)
	case sigLoggedOut:
		s.onLoggedOut(ctx, out.reason)
		*o = outage{}
	case sigReplaced:
		// Another client holds the account: wait long enough that two
		// processes on one session cannot replace each other in a loop.
		s.waitIn(ctx, Replaced, out.reason, s.opts.ReplacedBackoff+jitter(s.opts.ReplacedBackoff))
		*o = outage{}
	case sigBanned:
		s.waitIn(ctx, Banned, out.reason, out.expire)
		*o = outage{}
	case sigOutdated:
		if s.onOutdated(ctx) { // version.go: a newer version is in use, dial at once
			return nil
		}
		<-ctx.Done()
	}
	return nil
}

// isNetworkError tells "nothing answered" (the network or the server is
// down: refused, reset, timed out, or closed before TLS completed) from an
// answer that refused us, such as an HTTP 503 on upgrade.
func isNetworkError(err error) bool {
	var status socket.ErrWithStatusCode
	if errors.As(err, &status) {
		return false
	}
	return exhttp.IsNetworkError(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// retryAfter waits the backoff delay for the next failure in a row.
func (s *Supervisor) retryAfter(ctx context.Context, o *outage, reason string) error {
	o.failures++
	if o.failures == 1 {
		o.start = time.Now()
	}
	n := o.failures
	if s.opts.MaxRetries > 0 && n > s.opts.MaxRetries {
		s.setState(Stopped, fmt.Sprintf("gave up after %d attempts: %s", s.opts.MaxRetries, reason), nil)
		s.alert(ctx, fmt.Sprintf("Gave up reconnecting to WhatsApp after %d attempts: %s", s.opts.MaxRetries, reason))
		return fmt.Errorf("%w after %d attempts: %s", ErrGaveUp, s.opts.MaxRetries, reason)
	}
	if !o.alerted && s.opts.AlertAfter > 0 && time.Since(o.start) >= s.opts.AlertAfter {
		o.alerted = true
		s.alert(ctx, fmt.Sprintf("Disconnected from WhatsApp for %s and still reconnecting (attempt %d): %s",
			time.Since(o.start).Round(time.Second), n, reason))
	}
	delay := s.opts.Backoff.Delay(n - 1)
	next := time.Now().Add(delay)
	s.setState(Reconnecting, reason, func(st *Status) {
		st.Attempt = n
		st.NextAttempt = &next
	})
	// Debug: the outage was said once when it began (notice.go).
	s.log.Debug("reconnecting", "attempt", n, "in", delay.Round(time.Millisecond), "reason", reason)
	s.sleepUntilReachable(ctx, delay, o.network)
	return nil
}

// waitIn enters a state that waits a fixed time before the next attempt.
func (s *Supervisor) waitIn(ctx context.Context, state State, reason string, wait time.Duration) {
	next := time.Now().Add(wait)
	help := troubleshoot.ConnectionReplaced
	if state == Banned {
		help = troubleshoot.Banned
	}
	s.log.Error("connection stopped; will try again", "state", state, "reason", reason, "retry_in", wait.Round(time.Second), "help", help)
	// The alert before the state, so whoever sees the state finds it.
	s.alert(ctx, fmt.Sprintf("WhatsApp connection %s: %s. Trying again at %s.", state, reason, next.Format(time.RFC3339)))
	s.setState(state, reason, func(st *Status) {
		st.NextAttempt = &next
		if state == Banned {
			st.BanExpires = &next
		}
	})
	sleep(ctx, wait)
}

// await follows one open connection until it ends.
func (s *Supervisor) await(ctx context.Context, cli *whatsmeow.Client) outcome {
	var qr qrRotation
	defer qr.stop()
	ticks, stop := s.silenceTicks()
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return outcome{}
		case now := <-ticks:
			if out, dead := s.silent(now); dead {
				return out
			}
		case <-qr.expired():
			if qr.next() {
				s.showQR(qr.current(), qr.deadline)
				continue
			}
			s.log.Info("QR codes expired unscanned; fetching new ones")
			return outcome{kind: sigQRExpired}
		case sig := <-s.signals:
			switch sig.kind {
			case sigConnected:
				s.outageEnded()
				s.paired()
				s.live.hear(time.Now())
				// A login proves a silent connection's successor alive:
				// cleared first, the connected state is never reported
				// with that suspicion.
				s.setDegraded(deadSilent, "")
				s.setState(Connected, "logged in", nil)
			case sigQR:
				s.outageEnded()
				s.unpairedNotice()
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
				return outcome{kind: sig.kind, reason: sig.reason, expire: sig.expire, cause: sig.cause}
			}
		}
	}
}

// onLoggedOut forgets the dead session and prepares a fresh device, so the
// next connection shows the pairing flow again.
func (s *Supervisor) onLoggedOut(ctx context.Context, reason string) {
	s.log.Error("WhatsApp logged this device out; pair again with the QR code in the logs or on /pair", "reason", reason,
		"help", troubleshoot.LoggedOut)
	s.alert(ctx, "This bot was logged out of WhatsApp ("+reason+"). Pair it again: scan the QR code on /pair or in the logs.")
	s.setState(LoggedOut, reason, nil)
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

// alert tells the owner about something that needs a human; the log always
// has it, and Options.Alert delivers it further when set.
func (s *Supervisor) alert(ctx context.Context, text string) {
	s.log.Warn("owner alert", "text", text)
	s.mu.Lock()
	s.alerts = append(s.alerts, Alert{Time: time.Now(), Text: text})
	if len(s.alerts) > maxAlerts {
		s.alerts = s.alerts[len(s.alerts)-maxAlerts:]
	}
	s.mu.Unlock()
	if s.opts.Alert != nil {
		s.opts.Alert(ctx, text)
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
