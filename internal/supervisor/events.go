package supervisor

import (
	"context"
	"time"

	"go.mau.fi/whatsmeow/types/events"
)

// signalKind is what a whatsmeow event means for the run loop.
type signalKind int

const (
	sigConnected signalKind = iota
	sigDropped
	sigLoggedOut
	sigReplaced
	sigBanned
	sigOutdated
	sigQR
	sigPaired
	sigRestart // the server asked for a reconnect (stream error 515)
	sigDead    // the connection is open but dead (liveness.go)
)

type signal struct {
	kind   signalKind
	reason string
	expire time.Duration // ban length
	codes  []string      // QR codes
	cause  deadCause     // why a connection is dead
}

// onEvent runs on whatsmeow's event goroutine: it must not block, so it only
// translates events into signals for the run loop.
func (s *Supervisor) onEvent(evt any) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(evt)
	}
	if fromServer(evt) {
		s.live.hear(time.Now())
	}
	s.notePhone(evt)
	switch e := evt.(type) {
	case *events.Connected:
		s.send(signal{kind: sigConnected})
	case *events.Disconnected:
		s.send(signal{kind: sigDropped, reason: reasonClosed})
	case *events.ConnectFailure:
		s.send(signal{kind: sigDropped, reason: "connect failure: " + e.Reason.String()})
	case *events.StreamError:
		s.send(signal{kind: sigDropped, reason: "stream error " + e.Code})
	case *events.LoggedOut:
		s.send(signal{kind: sigLoggedOut, reason: "logged out: " + e.Reason.String()})
	case *events.StreamReplaced:
		s.send(signal{kind: sigReplaced, reason: "another client connected with this session"})
	case *events.TemporaryBan:
		s.send(signal{kind: sigBanned, reason: e.String(), expire: e.Expire})
	case *events.ClientOutdated:
		s.send(signal{kind: sigOutdated, reason: "WhatsApp refused the client version (405)"})
	case *events.QR:
		s.send(signal{kind: sigQR, codes: e.Codes})
	case *events.PairSuccess:
		s.onPaired(e)
	case *events.PairError:
		s.log.Error("pairing failed", "err", e.Error)
	case *events.ManualLoginReconnect:
		s.send(signal{kind: sigRestart, reason: "server asked for a reconnect (515)"})
	case *events.KeepAliveTimeout:
		s.log.Warn("keep-alive ping unanswered", "errors", e.ErrorCount, "last_success", e.LastSuccess)
		if m := s.opts.Metrics; m != nil {
			m.KeepAliveTimeouts.Inc()
		}
		// whatsmeow only forces a reconnect here when its own auto-reconnect
		// is on, and then without any Disconnected event; with ours on, a
		// connection that stopped answering is ended by us.
		if time.Since(e.LastSuccess) > s.opts.KeepAliveMaxFail {
			s.send(signal{kind: sigDropped, reason: "keep-alive unanswered since " + e.LastSuccess.Format(time.RFC3339)})
		}
	case *events.KeepAliveRestored:
		s.log.Info("keep-alive restored")
	}
}

func (s *Supervisor) send(sig signal) {
	select {
	case s.signals <- sig:
	default:
		// 64 unprocessed connection events means the loop is stuck; losing
		// one is better than stalling whatsmeow's event goroutine.
		s.log.Error("connection event dropped: run loop is not keeping up", "kind", sig.kind)
	}
}

func (s *Supervisor) onPaired(e *events.PairSuccess) {
	s.log.Info("paired", "account", e.ID.String(), "platform", e.Platform)
	if err := s.opts.Store.BindAccount(context.Background(), s.opts.SessionID, e.ID); err != nil {
		s.log.Error("record pairing", "err", err)
	}
	s.update(func(st *Status, p *Pairing) {
		st.Account = e.ID.String()
		*p = Pairing{Paired: true, Account: e.ID.String()}
	})
	s.send(signal{kind: sigPaired})
}

// reasonClosed marks drops reported by whatsmeow's Disconnected event.
const reasonClosed = "connection closed"
