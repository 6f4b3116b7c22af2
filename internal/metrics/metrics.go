// Package metrics owns the process's Prometheus registry and the collectors
// that every part of blacksky reports to.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one process's registry and collectors; it is not global so
// tests can run several processes' worth side by side.
type Metrics struct {
	Registry *prometheus.Registry

	ConnectionState   *prometheus.GaugeVec   // 1 for the current state, 0 for the others
	Transitions       *prometheus.CounterVec // state changes by target state
	ConnectAttempts   prometheus.Counter
	ConnectFailures   prometheus.Counter
	KeepAliveTimeouts prometheus.Counter
	DeadConnections   *prometheus.CounterVec // open connections ended as dead, by cause (unacked, silent)

	UndecryptableMessages prometheus.Counter // incoming messages whatsmeow could not decrypt
	RecoveredMessages     prometheus.Counter // of those, copies the phone sent again
}

// New creates a registry with Go runtime and process collectors and ours.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		ConnectionState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "blacksky_connection_state",
			Help: "1 for the WhatsApp connection's current state, 0 for the others.",
		}, []string{"state"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blacksky_connection_transitions_total",
			Help: "Changes of the WhatsApp connection's state, by the state entered.",
		}, []string{"state"}),
		ConnectAttempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blacksky_connect_attempts_total",
			Help: "Connection attempts to WhatsApp.",
		}),
		ConnectFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blacksky_connect_failures_total",
			Help: "Connection attempts to WhatsApp that failed.",
		}),
		KeepAliveTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blacksky_keepalive_timeouts_total",
			Help: "Keep-alive pings WhatsApp did not answer in time.",
		}),
		DeadConnections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blacksky_dead_connections_total",
			Help: "Open connections ended as dead: a message got no ack (unacked), or nothing but pings came (silent).",
		}, []string{"cause"}),
		UndecryptableMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blacksky_undecryptable_messages_total",
			Help: "Incoming messages that could not be decrypted (each copy WhatsApp delivered); the phone is asked to send them again.",
		}),
		RecoveredMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blacksky_undecryptable_recovered_total",
			Help: "Undecryptable incoming messages the phone sent again and the bot stored.",
		}),
	}
	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ConnectionState, m.Transitions, m.ConnectAttempts, m.ConnectFailures, m.KeepAliveTimeouts,
		m.DeadConnections,
		m.UndecryptableMessages, m.RecoveredMessages,
	)
	return m
}
