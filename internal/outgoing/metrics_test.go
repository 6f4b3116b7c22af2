package outgoing

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

func TestMetrics(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		q := e.queue(t, Options{MaxPending: 2, MaxAttempts: 2})
		reg := prometheus.NewRegistry()
		reg.MustRegister(q.Collector())
		ok := mustEnqueue(t, q, chatJID(1), "ok")
		bad := mustEnqueue(t, q, chatJID(2), "bad")
		if _, _, err := q.Enqueue(context.Background(), Request{To: chatJID(3), Text: "full"}); !errors.Is(err, ErrBacklogFull) {
			t.Fatal(err)
		}
		got := gather(t, reg)
		if got["blacksky_outbox_messages{state=pending}"] != 2 || got["blacksky_outbox_enqueued_total"] != 2 || got["blacksky_outbox_rejected_total"] != 1 {
			t.Fatalf("metrics before sending: %v", got)
		}
		sender := &recorder{fail: func(_ context.Context, m Message, _ int) error {
			if m.ID == bad.ID {
				return errFlaky
			}
			return nil
		}}
		stop := run(t, q, sender, NewSwitchGate(true))
		waitState(t, q, ok.ID, Sent)
		waitState(t, q, bad.ID, Dead)
		// The counters move just after the row does; once Run has
		// returned, every outcome is counted.
		stop()
		got = gather(t, reg)
		want := map[string]float64{
			"blacksky_outbox_messages{state=sent}":            1,
			"blacksky_outbox_messages{state=dead}":            1,
			"blacksky_outbox_messages{state=pending}":         0,
			"blacksky_outbox_oldest_pending_age_seconds":      0,
			"blacksky_outbox_sends_total":                     1,
			"blacksky_outbox_send_failures_total":             2,
			"blacksky_outbox_retries_total":                   1,
			"blacksky_outbox_dead_total{reason=max_attempts}": 1,
			"blacksky_outbox_dead_total{reason=permanent}":    0,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v; want %v", k, got[k], v)
			}
		}
	})
}
