package bot

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/jobs"
	"github.com/blacksky-bot/blacksky/internal/metrics"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// Defaults for Options.
const (
	DefaultSession        = "default"
	DefaultPrefix         = "."
	DefaultBotName        = "blacksky"
	DefaultWorkers        = 4
	DefaultMaxAttempts    = 5
	DefaultStoreTimeout   = 10 * time.Second
	DefaultCommandTimeout = time.Minute
	DefaultPollInterval   = 2 * time.Second
	DefaultRetention      = 7 * 24 * time.Hour
)

// ErrRunning is returned by Run when the bot's worker already runs.
var ErrRunning = errors.New("bot worker is already running")

// ErrNotConfigured is what an injected Backup or Reconnect may return (or
// what the bot answers when it is nil) for a feature that is not set up.
var ErrNotConfigured = errors.New("not configured")

// Options configures a Bot; zero fields take the documented defaults.
type Options struct {
	// DB is the migrated database holding the inbox (Store.DB()), and
	// Engine its engine (Store.Engine()); both are required.
	DB     *sql.DB
	Engine store.Engine
	// Session is the account (SESSION_ID); default "default".
	Session string
	// Prefix starts a command (PREFIX); default ".".
	Prefix string
	// Owners are the owners' phone numbers, digits only (OWNER_NUMBER).
	Owners []string
	// BotName and Version appear in replies and the connected notice.
	BotName, Version string
	// Started is when the process started, for uptime; default New's time.
	Started time.Time
	// StartID names this process start in idempotency keys; default random.
	StartID string
	// Queue is the outgoing queue every reply goes through; required.
	Queue *outgoing.Queue
	// Status reports the connection (e.g. account.Runner.Status); optional.
	Status func() supervisor.Status
	// Backup takes a backup now and describes it; nil answers "not configured".
	Backup func(ctx context.Context) (string, error)
	// Reconnect drops and re-opens the connection; nil answers "not configured".
	Reconnect func()
	// Webhook, if set, receives every incoming message.
	Webhook *webhook.Client
	// Metrics, if set, counts undecryptable and recovered messages.
	Metrics *metrics.Metrics
	// HandleFromMe routes commands the account itself sent from another
	// device (the phone); off by default, those are only recorded.
	HandleFromMe bool
	// Workers is how many chats are handled at once; default 4.
	Workers int
	// MaxAttempts marks a message failed after this many handlings that
	// hit a storage error; default 5.
	MaxAttempts int
	// Backoff spaces those retries; default 1s doubling to 1m, full jitter.
	Backoff backoff.Policy
	// StoreTimeout bounds storing one incoming message; default 10s.
	StoreTimeout time.Duration
	// CommandTimeout bounds one command; default 1m.
	CommandTimeout time.Duration
	// PollInterval is the worker's fallback wake-up; default 2s.
	PollInterval time.Duration
	// Retention is how long handled messages are kept to recognise
	// redeliveries; default 7 days.
	Retention time.Duration
	// Logger receives the bot's records; default discards.
	Logger *slog.Logger
	// Now is the clock, for tests; default time.Now.
	Now func() time.Time
}

// Bot stores incoming messages, routes commands and replies through the outgoing queue.
type Bot struct {
	opts   Options
	log    *slog.Logger
	owners map[string]bool

	mu       sync.RWMutex
	commands map[string]*Command
	order    []*Command

	wake      chan struct{}
	connected chan struct{}
	notified  atomic.Bool
	running   atomic.Bool
	lids      atomic.Pointer[lidMap]
	jobs      *jobs.Queue // the inbox, as the job engine sees it
	owner     string      // this process's name on the messages it handles

	// failMark, when set by a test, fails the step that marks a message
	// handled, simulating a crash between the reply and the mark.
	failMark func() error
}

// InboxTable is the inbox as the job engine sees it: a chat's messages are
// handled one at a time in the order they were stored, and a pending
// message under a live lease is being handled.
var InboxTable = jobs.Table{Name: "blacksky_inbox", Kind: "incoming", Partition: "chat", Pending: string(Pending), Running: string(Pending),
	Done: string(Handled), Dead: string(Dead), DoneAt: "handled_at"}

// New returns a bot with the built-in commands registered; it does not
// touch the database. It panics without Options.DB and Options.Kind.
func New(opts Options) *Bot {
	if opts.DB == nil || opts.Engine == "" {
		panic("bot: Options.DB and Options.Engine are required")
	}
	if opts.Session == "" {
		opts.Session = DefaultSession
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.BotName == "" {
		opts.BotName = DefaultBotName
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Started.IsZero() {
		opts.Started = opts.Now()
	}
	if opts.StartID == "" {
		var b [6]byte
		rand.Read(b[:])
		opts.StartID = strconv.FormatInt(opts.Started.UnixMilli(), 36) + "-" + hex.EncodeToString(b[:])
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.Backoff.Base <= 0 {
		opts.Backoff.Base = time.Second
	}
	if opts.Backoff.Max <= 0 {
		opts.Backoff.Max = time.Minute
	}
	if opts.StoreTimeout <= 0 {
		opts.StoreTimeout = DefaultStoreTimeout
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = DefaultCommandTimeout
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	q, err := jobs.New(opts.DB, opts.Engine, InboxTable, opts.Session, opts.Now)
	if err != nil {
		panic(err) // the table is this package's constant
	}
	var owner [6]byte
	rand.Read(owner[:])
	b := &Bot{
		jobs:      q,
		owner:     "bot-" + hex.EncodeToString(owner[:]),
		opts:      opts,
		log:       opts.Logger,
		owners:    make(map[string]bool, len(opts.Owners)),
		commands:  make(map[string]*Command),
		wake:      make(chan struct{}, 1),
		connected: make(chan struct{}, 1),
	}
	for _, o := range opts.Owners {
		if d := digits(o); d != "" {
			b.owners[d] = true
		}
	}
	b.registerBuiltins()
	return b
}

// Options returns the bot's options with defaults filled in.
func (b *Bot) Options() Options { return b.opts }

func (b *Bot) wakeUp() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v) }
