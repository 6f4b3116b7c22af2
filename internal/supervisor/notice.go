package supervisor

import (
	"errors"
	"net"
	"time"

	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// notices keeps the operator's log readable through states that last: an
// outage or an unpaired bot is said once, in one line that says what is
// wrong and what to do, when it starts (and once when it ends), while the
// attempts and QR codes in between are debug and info lines. Without it an
// offline first run printed "no such host" on every attempt and an unpaired
// one a QR code every 20 s, with no hint (issue 15). Only the run loop's
// goroutine touches it.
type notices struct {
	down     time.Time // when the current outage was first noticed; zero when none
	unpaired bool      // the "not paired" line was logged since the bot was last paired
}

// outageStarted says once per outage that WhatsApp cannot be reached.
// network tells "nothing answered" (DNS, routing, a dead server) from a
// server that answered and refused.
func (s *Supervisor) outageStarted(network bool, reason string) {
	if !s.notice.down.IsZero() {
		return
	}
	s.notice.down = time.Now()
	if network {
		s.log.Warn("cannot reach WhatsApp ("+reason+"): check this machine's network/DNS; retrying by itself",
			"help", troubleshoot.Offline)
		return
	}
	s.log.Warn("WhatsApp did not accept the connection ("+reason+"); retrying by itself with backoff",
		"help", troubleshoot.Offline)
}

// shortCause is the part of a dial error an operator can act on: whatsmeow
// wraps "lookup web.whatsapp.com: no such host" in three layers of "failed to
// dial whatsapp web websocket: ...".
func shortCause(err error) string {
	if dns, ok := errors.AsType[*net.DNSError](err); ok {
		return "lookup " + dns.Name + ": " + dns.Err
	}
	if op, ok := errors.AsType[*net.OpError](err); ok {
		return op.Error()
	}
	return err.Error()
}

// outageEnded says once that WhatsApp answers again, and after how long.
func (s *Supervisor) outageEnded() {
	if s.notice.down.IsZero() {
		return
	}
	down := time.Since(s.notice.down).Round(time.Second)
	s.notice.down = time.Time{}
	s.log.Info("reached WhatsApp again", "down_for", down.String())
}

// unpairedNotice says once, until the bot is paired, how to pair it.
func (s *Supervisor) unpairedNotice() {
	if s.notice.unpaired {
		return
	}
	s.notice.unpaired = true
	s.log.Warn("this bot is not paired with a WhatsApp account: open /pair on its HTTP address, or run `blacksky pair`, and scan the QR code with WhatsApp > Linked devices",
		"help", troubleshoot.NotPaired)
}

// paired lets a later loss of the session say "not paired" again.
func (s *Supervisor) paired() { s.notice.unpaired = false }
