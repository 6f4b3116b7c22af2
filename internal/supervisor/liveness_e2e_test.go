package supervisor_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	. "github.com/blacksky-bot/blacksky/internal/supervisor"
)

// A connection whose messages WhatsApp neither acks nor delivers, while it
// keeps answering pings, is ended and redialled; /readyz says why until a
// message is acked on the new connection, and the message then goes out once.
func TestUnackedSendsEndTheConnection(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	h := newHarness(t, func(o *Options) {
		o.AckTimeout = 300 * time.Millisecond
		o.Metrics = m
	})
	h.pair()
	contact, err := h.srv.AddContact("15550000002")
	if err != nil {
		t.Fatal(err)
	}
	send := &outgoing.WhatsAppSender{Client: h.sup.Client, Acks: h.sup}
	msg := outgoing.Message{To: contact.JID().String(), WAID: "3EB0DEADC0DE0001", Text: "are you there?"}

	mark := h.mark()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultStuckSends}); err != nil {
		t.Fatal(err)
	}
	if err := send.Send(h.ctx(10*time.Second), msg); !errors.Is(err, whatsmeow.ErrMessageTimedOut) {
		t.Fatalf("send on a stuck connection: %v, want ErrMessageTimedOut", err)
	}
	h.waitStates(mark, Connecting, Connected)
	if n := len(contact.Inbox()); n != 0 {
		t.Fatalf("the stuck connection delivered %d messages", n)
	}
	st := h.sup.Status()
	if !strings.Contains(st.Degraded, "acknowledged no message") {
		t.Errorf("after the redial Status.Degraded = %q, want the unacknowledged sends named", st.Degraded)
	}
	if code, body := readyz(h); code != http.StatusServiceUnavailable || !strings.Contains(body, "acknowledged no message") {
		t.Errorf("/readyz before any ack on the new connection: %d %s; want 503 naming the unacknowledged sends", code, body)
	}

	// The outgoing queue's next attempt, same ID, on the new connection.
	if err := send.Send(h.ctx(10*time.Second), msg); err != nil {
		t.Fatalf("send after the redial: %v", err)
	}
	if st := h.sup.Status(); st.Degraded != "" || st.State != Connected {
		t.Errorf("after an ack: %s degraded %q, want connected and trusted", st.State, st.Degraded)
	}
	if code, body := readyz(h); code != http.StatusOK {
		t.Errorf("/readyz after an ack: %d %s", code, body)
	}
	if err := h.srv.WaitFor(h.ctx(5*time.Second), func() bool { return len(contact.Inbox()) > 0 }); err != nil {
		t.Fatal("the contact never got the message:", err)
	}
	if in := contact.Inbox(); len(in) != 1 || in[0].Text != msg.Text {
		t.Errorf("contact inbox %+v, want the message once", in)
	}
	if got := counterValue(m.DeadConnections.WithLabelValues("unacked")); got != 1 {
		t.Errorf("blacksky_dead_connections_total{cause=unacked} = %v, want 1", got)
	}
	h.checkInvariants()
}

// A connection on which WhatsApp stopped pushing anything (pings, queries
// and acks still answered) is ended after SilenceTimeout; what it held back
// arrives on the next connection.
func TestDeafConnectionIsRedialled(t *testing.T) {
	t.Parallel()
	got := make(chan string, 16)
	m := metrics.New()
	h := newHarness(t, func(o *Options) {
		o.SilenceTimeout = time.Second
		o.Metrics = m
		o.OnEvent = func(evt any) {
			if e, ok := evt.(*events.Message); ok && e.Message.GetConversation() != "" {
				select {
				case got <- e.Message.GetConversation():
				default:
				}
			}
		}
	})
	h.pair()
	contact, err := h.srv.AddContact("15550000003")
	if err != nil {
		t.Fatal(err)
	}
	seq := h.srv.LastSeq()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDeaf}); err != nil {
		t.Fatal(err)
	}
	mark := h.mark()
	if _, err := contact.Send(h.ctx(5*time.Second), "anyone home?"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.srv.WaitEvent(h.ctx(5*time.Second), sandbox.EventPushWithheld, seq); err != nil {
		t.Fatal("the deaf connection pushed the message:", err)
	}
	select {
	case text := <-got:
		if text != "anyone home?" {
			t.Errorf("bot got %q", text)
		}
	case <-h.ctx(15 * time.Second).Done():
		t.Fatalf("the held-back message never arrived; states since the fault: %v", h.states(mark))
	}
	var sawReason bool
	for _, s := range h.since(mark) {
		if s.State == Connecting && strings.Contains(s.Reason, "nothing received from WhatsApp") {
			sawReason = true
		}
	}
	if !sawReason {
		t.Errorf("no redial named the silence; saw %+v", h.since(mark))
	}
	if n := counterValue(m.DeadConnections.WithLabelValues("silent")); n < 1 {
		t.Errorf("blacksky_dead_connections_total{cause=silent} = %v, want at least 1", n)
	}
	h.checkInvariants()
}

func readyz(h *harness) (int, string) {
	rr := httptest.NewRecorder()
	h.api.ServeHTTP(rr, httptest.NewRequest("GET", "/readyz", nil).WithContext(context.Background()))
	return rr.Code, rr.Body.String()
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return -1
	}
	return d.GetCounter().GetValue()
}

// A server that accepts every connection and kills it right after login
// is not hammered: over the fault, attempts stay within the attempt
// limit's burst plus about one a second, and the bot is back once it ends.
func TestKillingServerIsNotHammered(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *Options) {
		o.Backoff = backoff.Policy{Base: time.Second, Max: time.Minute}
		o.ProbeInterval = 500 * time.Millisecond
	})
	h.pair()
	const window = 4 * time.Second
	seq := h.srv.LastSeq()
	start := time.Now()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultKillOnLogin, Duration: window}); err != nil {
		t.Fatal(err)
	}
	end := start.Add(window)
	if err := h.sup.WaitFor(h.ctx(30*time.Second), func(st Status, _ Pairing) bool {
		return st.State == Connected && st.Since.After(end)
	}); err != nil {
		t.Fatalf("not connected after the killing ended: %v; states %v", err, h.states(0))
	}
	attempts := 0
	for _, e := range h.srv.Events() {
		if e.Seq > seq && e.Kind == sandbox.EventConnOpened && e.Time.Before(end) {
			attempts++
		}
	}
	// 3 at once, then one per 1.25 s; one more for rounding at the edges.
	if most := 3 + int(window/(1250*time.Millisecond)) + 1; attempts > most {
		t.Errorf("%d connection attempts in %s of killing, want at most %d", attempts, window, most)
	}
	t.Logf("%d attempts in %s", attempts, window)
}
