package supervisor

import (
	"context"
	"io"
	"net/http"
	"time"
)

// probeURL is the endpoint whatsmeow dials; a plain GET there answers with
// an HTTP error once the server is reachable, which is all a probe needs.
const probeURL = "https://web.whatsapp.com/ws/chat"

// sleepUntilReachable waits up to d, but returns at once when a probe finds
// WhatsApp's endpoint answering after it did not: after a network-level
// failure (down is true: nothing answered), or after a probe of this wait
// that failed. A server that answered (refused an upgrade, closed a stream
// with 503) and keeps answering gets the whole backoff. Probes are cheap
// (one TLS handshake, no login), so they can run far more often than
// attempts. Each probe waits a random half to one and a half intervals
// after the last, so bots that lost one server probe at unrelated instants
// and do not all log in at once when it returns; a further jitter after the
// probe (there was one, of up to an interval: 250 ms on average at the
// default) only added to the lag (docs/RECONNECT.md).
func (s *Supervisor) sleepUntilReachable(ctx context.Context, d time.Duration, down bool) {
	interval := s.opts.ProbeInterval
	if interval <= 0 || d <= interval {
		sleep(ctx, d)
		return
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		probe := time.NewTimer(interval/2 + jitter(interval))
		select {
		case <-ctx.Done():
			probe.Stop()
			return
		case <-deadline.C:
			probe.Stop()
			return
		case <-probe.C:
		}
		up := s.reachable(ctx)
		if up && down {
			s.log.Debug("WhatsApp answers again; reconnecting early")
			return
		}
		down = !up
	}
}

func (s *Supervisor) reachable(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, probeURL, nil)
	if err != nil {
		return false
	}
	client := s.opts.ProbeClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return true
}
