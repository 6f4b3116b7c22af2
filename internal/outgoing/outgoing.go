// Package outgoing is the durable queue of outgoing WhatsApp messages: every
// message is written to the database before any send is attempted, gets its
// WhatsApp message ID at once (so every attempt reuses it and the recipient
// sees it once), and is delivered in order per chat, only while the
// connection gate is open, with retries, backoff, rate limits, leases that
// survive crashed processes, and a dead-letter state an operator can retry
// or purge. While WhatsApp's reach-out lock is in force (error 463), messages
// to chats that have not written to the account wait for it to end without
// counting attempts, and the others keep flowing (reachout.go). It runs on
// SQLite and PostgreSQL; several processes may share one PostgreSQL database.
package outgoing

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/store"
)

// State is where a message is in its life: pending, sending, sent, then
// as far as WhatsApp's receipts take it (undelivered, delivered, read,
// played), or dead.
type State string

// The states of a message. Pending and sending count towards the backlog.
// The job engine's state column holds pending, sending, sent or dead; the
// steps after sent are the receipt_state column of a sent message
// (receipts.go), which a message reaches only when WhatsApp said so.
const (
	Pending State = "pending" // waiting for its turn or its next attempt
	Sending State = "sending" // claimed by a process holding a lease on it
	Sent    State = "sent"    // WhatsApp's server took it (its ack); kept for retry receipts until pruned
	// Undelivered is a sent message that no device of the recipient
	// reported having within Options.DeliveryTimeout (the watchdog,
	// watchdog.go); a delivery receipt may still come and move it on.
	Undelivered State = "undelivered"
	Delivered   State = "delivered" // a device of the recipient has it (a delivery receipt)
	Read        State = "read"      // the recipient opened it (only when they share read receipts)
	Played      State = "played"    // the recipient played it (voice and video)
	Dead        State = "dead"      // given up on; kept until retried or purged
)

// States lists every state, for metrics and depth reports.
func States() []State {
	return []State{Pending, Sending, Sent, Undelivered, Delivered, Read, Played, Dead}
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	switch s {
	case Pending, Sending, Sent, Undelivered, Delivered, Read, Played, Dead:
		return true
	}
	return false
}

// fromReceipts reports whether s is a step after sent, which only
// receipts (and the watchdog) reach.
func (s State) fromReceipts() bool {
	switch s {
	case Undelivered, Delivered, Read, Played:
		return true
	}
	return false
}

// Errors callers are expected to tell apart with errors.Is.
var (
	// ErrInvalid wraps every reason a request is refused as malformed (HTTP 400).
	ErrInvalid = errors.New("invalid message")
	// ErrBacklogFull refuses an enqueue while MaxPending messages wait (HTTP 503).
	ErrBacklogFull = errors.New("outgoing backlog is full")
	// ErrNotFound is returned for an ID that names no message (HTTP 404).
	ErrNotFound = errors.New("message not found")
	// ErrWrongState refuses an operation the message's state does not allow (HTTP 409).
	ErrWrongState = errors.New("message is not in a state that allows this")
	// ErrRunning is returned by Run when the queue's dispatcher already runs.
	ErrRunning = errors.New("outgoing dispatcher is already running")
)

// Message is one outgoing message as stored.
type Message struct {
	ID int64  `json:"id"`
	To string `json:"to"` // the chat JID
	// ToLID is the LID of a phone-number chat, when whatsmeow's LID map
	// knows it (WhatsApp delivers direct messages to the LID); filled on
	// reads, never stored with the message.
	ToLID string `json:"to_lid,omitempty"`
	Text  string `json:"text"`
	// TextTruncated marks a text cut to a preview by List (Filter.Preview).
	TextTruncated  bool      `json:"text_truncated,omitempty"`
	WAID           string    `json:"wa_id"` // the WhatsApp message ID every attempt reuses
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	State          State     `json:"state"`
	Attempts       int       `json:"attempts"`
	LastError      string    `json:"last_error,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	QueuedAt       time.Time `json:"queued_at"` // enqueue or last manual retry; TTL counts from here
	NextAttemptAt  time.Time `json:"next_attempt_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	SentAt         time.Time `json:"sent_at,omitzero"`
	// The times of the steps after sent, as WhatsApp gave them (never
	// before SentAt); UndeliveredAt is when the watchdog flagged it.
	UndeliveredAt time.Time `json:"undelivered_at,omitzero"`
	DeliveredAt   time.Time `json:"delivered_at,omitzero"`
	ReadAt        time.Time `json:"read_at,omitzero"`
	PlayedAt      time.Time `json:"played_at,omitzero"`
	LeaseOwner    string    `json:"lease_owner,omitempty"`
	LeaseUntil    time.Time `json:"lease_until,omitzero"`
}

// Options configures a Queue; zero fields take the documented defaults.
type Options struct {
	// Session scopes the queue to one account (SESSION_ID); default "default".
	Session string
	// Owner names this process in leases and must differ between processes; default host:pid:random.
	Owner string
	// MaxAttempts sends a message to dead after this many attempts, counting claims whose process died (OUTGOING_MAX_ATTEMPTS); default 10.
	MaxAttempts int
	// TTL sends a message to dead when it waited this long (OUTGOING_TTL); default 24h.
	TTL time.Duration
	// MaxPending refuses enqueues while this many messages are pending or sending (OUTGOING_MAX_PENDING); default 10000.
	MaxPending int
	// Backoff spaces retries after transient failures; default 2s doubling to 5m, full jitter.
	Backoff backoff.Policy
	// Lease is how long a claim is exclusive before another process may rescue it; default 60s.
	Lease time.Duration
	// SendTimeout bounds one send attempt; default and ceiling is half the Lease, so a lease never runs out mid-send.
	SendTimeout time.Duration
	// Retention is how long sent messages are kept for retry receipts; default 7 days.
	Retention time.Duration
	// Workers is how many chats are sent to at once; default 16.
	Workers int
	// RatePerMinute caps sends per account in any 60 s window (SEND_RATE_PER_MINUTE); 0 is unlimited.
	RatePerMinute int
	// ChatGap is the least time between two messages to one chat (SEND_CHAT_GAP); 0 is none.
	ChatGap time.Duration
	// PollInterval is the fallback wake-up that picks up other processes' work; default 1s.
	PollInterval time.Duration
	// ShutdownGrace is how long in-flight sends may finish after Run's context ends; default 10s.
	ShutdownGrace time.Duration
	// DeliveryTimeout is how long a sent message may go without a delivery
	// receipt before the watchdog flags it undelivered
	// (OUTGOING_DELIVERY_TIMEOUT); 0 is the default, 10 minutes; below 0 turns
	// the watchdog off.
	DeliveryTimeout time.Duration
	// Settled, when set, runs inside the transaction that records messages
	// in a new state (sent, dead, or a step after sent), given them in that
	// state, once per step: a read receipt that comes first gives the
	// message as delivered and then as read. Its error rolls the
	// transaction back. What it writes there (webhook events) is committed
	// exactly when the state change is, never without it.
	Settled func(ctx context.Context, tx *sql.Tx, msgs []Message) error
	// HasWritten tells whether a chat has written to the account: while
	// WhatsApp's reach-out lock is in force only such chats are sent to
	// (reachout.go). Nil means no chat has.
	HasWritten func(ctx context.Context, chat string) (bool, error)
	// Alert, if set, tells the account's owner of a reach-out lock, once
	// per lock; it runs on the dispatcher and must not block for long.
	Alert func(ctx context.Context, text string)
	// Logger receives the queue's records; default discards.
	Logger *slog.Logger
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
}

// Defaults for Options.
const (
	DefaultSession         = "default"
	DefaultMaxAttempts     = 10
	DefaultTTL             = 24 * time.Hour
	DefaultMaxPending      = 10000
	DefaultLease           = 60 * time.Second
	DefaultRetention       = 7 * 24 * time.Hour
	DefaultWorkers         = 16
	DefaultPollInterval    = time.Second
	DefaultShutdownGrace   = 10 * time.Second
	DefaultDeliveryTimeout = 10 * time.Minute
	DefaultBackoffBase     = 2 * time.Second
	DefaultBackoffMax      = 5 * time.Minute
)

func (o Options) withDefaults() Options {
	if o.Session == "" {
		o.Session = DefaultSession
	}
	if o.Owner == "" {
		o.Owner = defaultOwner()
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.Backoff.Base <= 0 {
		o.Backoff.Base, o.Backoff.Max = DefaultBackoffBase, DefaultBackoffMax
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.SendTimeout <= 0 || o.SendTimeout > o.Lease/2 {
		o.SendTimeout = o.Lease / 2
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.RatePerMinute < 0 {
		o.RatePerMinute = 0
	}
	if o.ChatGap < 0 {
		o.ChatGap = 0
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = DefaultShutdownGrace
	}
	if o.DeliveryTimeout == 0 {
		o.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func defaultOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Queue is one account's outgoing on one database handle.
type Queue struct {
	db      *sql.DB
	engine  store.Engine
	opts    Options
	log     *slog.Logger
	wake    chan struct{} // nudges the dispatcher after an enqueue or retry
	running atomic.Bool
	stats   counters
	// enqueues and sends group-commit concurrent writes (batch.go).
	enqueues *batcher[*enqueueCall]
	sends    *batcher[*sentCall]
	// jobs is the engine under the queue (claim.go).
	jobs *jobs.Queue
	// lastCount is the last exact backlog count; the enqueue turn guards it.
	lastCount backlogCount
	// reachout is WhatsApp's reach-out lock as this process knows it.
	reachout reachout
}

// New returns the queue of opts.Session on db, whose schema Store.Migrate
// has created; it does not touch the database. A SQLite db should come
// from the store (internal/sqlitedb), which queues writers in the process.
func New(db *sql.DB, engine store.Engine, opts Options) *Queue {
	opts = opts.withDefaults()
	q := &Queue{
		db:     db,
		engine: engine,
		opts:   opts,
		log:    opts.Logger.With("component", "outgoing", "session", opts.Session),
		wake:   make(chan struct{}, 1),
	}
	q.stats.initHistograms()
	q.jobs = newJobs(q)
	q.enqueues = newBatcher(q.writeBatch)
	q.sends = newBatcher(q.writeSent)
	return q
}

// Jobs returns the job engine's view of the queue (kind "outgoing"), for
// the metrics and the operator's API every kind of work shares.
func (q *Queue) Jobs() *jobs.Queue { return q.jobs }

// Options returns the queue's options with defaults filled in.
func (q *Queue) Options() Options { return q.opts }

func (q *Queue) now() time.Time { return q.opts.Now() }

// signal wakes the dispatcher without blocking; one pending nudge is enough.
func (q *Queue) wakeUp() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}
