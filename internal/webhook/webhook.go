package webhook

import (
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// Defaults for Options.
const (
	DefaultSession          = "default"
	DefaultMaxAttempts      = 12
	DefaultTimeout          = 10 * time.Second
	DefaultMaxResponseBytes = 64 << 10
	DefaultPollInterval     = 2 * time.Second
	DefaultRetention        = 7 * 24 * time.Hour
	DefaultBackoffBase      = 2 * time.Second
	DefaultBackoffMax       = 30 * time.Minute
	DefaultMaxRedirects     = 3
)

// Event kinds the bot produces.
const (
	KindMessageReceived = "message.received"
	KindMessageSent     = "message.sent"
	KindMessageDead     = "message.dead"
	// The steps after message.sent, from the recipient's receipts and the
	// delivery watchdog (outgoing/receipts.go, outgoing/watchdog.go).
	KindMessageUndelivered = "message.undelivered"
	KindMessageDelivered   = "message.delivered"
	KindMessageRead        = "message.read"
	KindMessagePlayed      = "message.played"
	// KindMessageUndecryptable reports an incoming message that could not be
	// decrypted; if the phone sends it again it follows as message.received.
	KindMessageUndecryptable = "message.undecryptable"
)

// Errors callers may tell apart with errors.Is.
var (
	// ErrInvalid refuses a malformed event or configuration.
	ErrInvalid = errors.New("invalid webhook event")
	// ErrRunning is returned by Run when it already runs for this Client.
	ErrRunning = errors.New("webhook dispatcher is already running")
)

// Options configures a Client; zero fields take the documented defaults.
type Options struct {
	// URL receives the POSTs (WEBHOOK_URL); http or https.
	URL string
	// Secret keys the HMAC-SHA256 signature (WEBHOOK_SECRET); empty signs with an empty key.
	Secret string
	// Session scopes the events to one account (SESSION_ID); default "default".
	Session string
	// MaxAttempts sends an event to dead after this many failed attempts; default 12.
	MaxAttempts int
	// Backoff spaces the attempts of one event; default 2s doubling to 30m, full jitter.
	Backoff backoff.Policy
	// Timeout bounds one attempt, response included; default 10s.
	Timeout time.Duration
	// MaxResponseBytes is the most of a response body read (the rest is dropped); default 64 KiB.
	MaxResponseBytes int64
	// PollInterval is the fallback wake-up of the dispatcher; default 2s.
	PollInterval time.Duration
	// Retention is how long delivered events are kept before pruning; default 7 days.
	Retention time.Duration
	// HTTPClient sends the requests; its CheckRedirect is replaced by the
	// same-host rule. Default: a client with Timeout.
	HTTPClient *http.Client
	// UserAgent names the sender; default "blacksky-webhook".
	UserAgent string
	// Logger receives the client's records; default discards.
	Logger *slog.Logger
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
}

// Client is one account's webhook: a durable event table and its dispatcher.
type Client struct {
	db      *sql.DB
	jobs    *jobs.Queue
	owner   string // this dispatcher's name on the events it holds
	opts    Options
	target  *url.URL
	http    *http.Client
	log     *slog.Logger
	wake    chan struct{}
	running atomic.Bool
}

// New returns the webhook of opts.Session on db, a database of that engine whose
// schema Store.Migrate has created; it does not touch the database and
// refuses a URL that is not absolute http(s).
func New(db *sql.DB, engine store.Engine, opts Options) (*Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.Join(ErrInvalid, errors.New("webhook URL must be an absolute http:// or https:// URL"))
	}
	if opts.Session == "" {
		opts.Session = DefaultSession
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff.Base <= 0 {
		opts.Backoff.Base = DefaultBackoffBase
	}
	if opts.Backoff.Max <= 0 {
		opts.Backoff.Max = DefaultBackoffMax
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "blacksky-webhook"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	hc := &http.Client{Timeout: opts.Timeout}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		hc = &c
	}
	hc.CheckRedirect = sameHostRedirects(u)
	q, err := jobs.New(db, engine, Table, opts.Session, opts.Now)
	if err != nil {
		return nil, err
	}
	return &Client{
		db: db, jobs: q, owner: "webhook-" + NewEventID()[4:], opts: opts, target: u, http: hc,
		log:  opts.Logger,
		wake: make(chan struct{}, 1),
	}, nil
}

// Table is the events' table as the job engine sees it: a pending event
// under a live lease is being posted.
var Table = jobs.Table{Name: "blacksky_webhook", Kind: "webhook", Pending: string(Pending), Running: string(Pending),
	Done: string(Delivered), Dead: string(Dead), DoneAt: "delivered_at", Load: "event_id, kind, body"}

// Options returns the client's options with defaults filled in.
func (c *Client) Options() Options { return c.opts }

// sameHostRedirects follows at most DefaultMaxRedirects redirects, and only
// to the webhook's own scheme and host: the signed body must not be handed
// to another server, nor downgraded from https.
func sameHostRedirects(target *url.URL) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= DefaultMaxRedirects {
			return http.ErrUseLastResponse
		}
		if req.URL.Scheme != target.Scheme || req.URL.Host != target.Host {
			return http.ErrUseLastResponse
		}
		return nil
	}
}

// Wake makes the dispatcher look for due events now, e.g. after the
// transaction holding an EnqueueID committed.
func (c *Client) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }
