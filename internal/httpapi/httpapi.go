// Package httpapi serves blacksky's HTTP endpoints: liveness, readiness,
// status, metrics, the pairing page and API that operators and scripts use
// to link the bot as a WhatsApp device, and the messages API that queues
// outgoing messages and manages the queue.
//
// Who may ask what (auth.go): /healthz and /readyz answer anyone and reveal
// nothing of the deployment (no number, host, path or session). /status
// names the account's number and the host holding it, so it is protected
// like the API: API_TOKEN when set, else this machine only. /metrics names
// neither: with API_TOKEN it needs the token (Prometheus sends it as a
// bearer token), without it answers anyone, as it always did.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// Connection is the view of the WhatsApp connection the endpoints need.
type Connection interface {
	Status() supervisor.Status
	Pairing() supervisor.Pairing
	Alerts() []supervisor.Alert
	RequestPairCode(ctx context.Context, phone string) (string, error)
}

// Storage tells whether the database can keep the bot's promises now
// (answers, accepts writes, has its files and room): store.Store.Check.
type Storage interface {
	Check(ctx context.Context) error
}

// Options holds what the endpoints report on.
type Options struct {
	Conn     Connection
	DB       Storage
	Database string // engine name shown in /status
	Metrics  *metrics.Metrics
	Token    string // API_TOKEN; empty allows protected endpoints from loopback only
	BotName  string
	Session  string
	Version  string
	Started  time.Time
	Logger   *slog.Logger
	// Outgoing is the outgoing message queue behind /api/v1/messages and
	// /api/v1/queue; nil makes them answer 503.
	Outgoing Outgoing
	// Backups, if set, describes the backups for /status.
	Backups func(ctx context.Context) any
	// Reachout, if set, reports WhatsApp's reach-out lock for /status.
	Reachout func() outgoing.ReachoutLock
	// Contacts answers GET /api/v1/contacts/{phone-or-lid}; nil makes it 503.
	Contacts Contacts
	// Jobs are the kinds of durable work beside the outgoing queue (which
	// Outgoing gives), by name ("incoming", "webhook"), for /api/v1/jobs.
	Jobs map[string]Jobs
	// RequestTimeout bounds each request; default DefaultRequestTimeout.
	RequestTimeout time.Duration
}

// maxBody bounds request bodies; no endpoint but POST /api/v1/messages
// (see maxMessageBody) takes more than a small JSON object.
const maxBody = 64 << 10

// New returns the handler for all endpoints.
func New(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{Options: opts}
	mux := http.NewServeMux()
	mux.Handle("/{$}", only(http.MethodGet, a.landingPage))
	mux.Handle("/healthz", only(http.MethodGet, a.healthz))
	mux.Handle("/readyz", only(http.MethodGet, a.readyz))
	mux.Handle("/status", a.protect(only(http.MethodGet, a.status)))
	mux.Handle("/metrics", a.protectWithToken(only(http.MethodGet, promhttp.HandlerFor(opts.Metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP)))
	mux.Handle("/pair", a.protect(only(http.MethodGet, a.pairPage)))
	mux.Handle("/pair/qr.png", a.protect(only(http.MethodGet, a.pairQR)))
	mux.Handle("/api/v1/pair", a.protect(only(http.MethodGet, a.pairJSON)))
	mux.Handle("/api/v1/pair/code", a.protect(only(http.MethodPost, a.pairCode)))
	a.registerMessages(mux)
	a.registerContacts(mux)
	a.registerJobs(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return limitBody(withDeadline(mux, opts.RequestTimeout))
}

// DefaultRequestTimeout is how long a request may take in the server; it
// stays below NewServer's WriteTimeout so that a client gets an answer (a
// 503 with Retry-After) instead of a closed connection.
const DefaultRequestTimeout = 10 * time.Second

// withDeadline gives every request a deadline its database calls honour:
// a database that does not answer (a black-holed connection) ends in a 503
// within it, not in a request nobody answers (issue 13, case 6).
func withDeadline(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		d = DefaultRequestTimeout
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// NewServer wraps h with timeouts that keep slow or idle clients from
// holding connections.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
}

type api struct {
	Options
}

func only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, "use "+method+" for "+r.URL.Path)
			return
		}
		h(w, r)
	}
}

func limitBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := int64(maxBody)
		if r.URL.Path == messagesPath {
			limit = maxMessageBody // a message's text may be longer than any other body
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		h.ServeHTTP(w, r)
	})
}
