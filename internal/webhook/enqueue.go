package webhook

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/blacksky-bot/blacksky/internal/jobs"
)

// MaxEventIDBytes is the longest event ID accepted.
const MaxEventIDBytes = 200

// Event is one stored webhook event.
type Event struct {
	ID          string    `json:"id"`
	Kind        string    `json:"type"`
	Body        string    `json:"body"`
	State       State     `json:"state"`
	Attempts    int       `json:"attempts"`
	LastError   string    `json:"last_error,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	NextAttempt time.Time `json:"next_attempt_at"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
}

// State is where an event is in its life.
type State string

// The states of an event.
const (
	Pending   State = "pending"   // waiting for its next attempt
	Delivered State = "delivered" // the endpoint answered 2xx
	Dead      State = "dead"      // given up after MaxAttempts
)

// envelope is the JSON body posted for an event.
type envelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Session   string          `json:"session"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// Execer is a *sql.DB or *sql.Tx, so an event can be stored in the
// transaction of the change it reports.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// NewEventID returns a random event ID.
func NewEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return "evt_" + hex.EncodeToString(b[:])
}

// Enqueue stores a new event of kind with payload (marshalled to JSON) under
// a random ID and returns the ID.
func (c *Client) Enqueue(ctx context.Context, kind string, payload any) (string, error) {
	id := NewEventID()
	return id, c.EnqueueID(ctx, c.db, id, kind, payload)
}

// EnqueueID stores the event under id through ex (the database or a
// transaction); an event already stored under id is left as it is, so
// reporting one happening twice delivers it once.
func (c *Client) EnqueueID(ctx context.Context, ex Execer, id, kind string, payload any) error {
	if id == "" || len(id) > MaxEventIDBytes || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return fmt.Errorf("%w: event ID must be 1 to %d bytes of UTF-8", ErrInvalid, MaxEventIDBytes)
	}
	if kind == "" {
		return fmt.Errorf("%w: event kind is empty", ErrInvalid)
	}
	data, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("%w: marshal payload: %v", ErrInvalid, err)
	}
	now := c.opts.Now()
	body, err := json.Marshal(envelope{ID: id, Type: kind, Session: c.opts.Session, CreatedAt: now.UTC(), Data: data})
	if err != nil {
		return fmt.Errorf("%w: marshal event: %v", ErrInvalid, err)
	}
	_, err = ex.ExecContext(ctx, `INSERT INTO blacksky_webhook
		(session_id, event_id, kind, body, state, attempts, last_error, created_at, run_at, updated_at)
		VALUES ($1, $2, $3, $4, 'pending', 0, '', $5, $5, $5)
		ON CONFLICT (session_id, event_id) DO NOTHING`,
		c.opts.Session, id, kind, string(body), ms(now))
	if err != nil {
		return fmt.Errorf("enqueue webhook event: %w", err)
	}
	c.Wake()
	return nil
}

// Get returns the event stored under id.
func (c *Client) Get(ctx context.Context, id string) (Event, bool, error) {
	var e Event
	var created, runAt int64
	var delivered sql.NullInt64
	err := c.db.QueryRowContext(ctx, `SELECT event_id, kind, body, state, attempts, last_error, created_at, run_at, delivered_at
		FROM blacksky_webhook WHERE session_id = $1 AND event_id = $2`, c.opts.Session, id).
		Scan(&e.ID, &e.Kind, &e.Body, &e.State, &e.Attempts, &e.LastError, &created, &runAt, &delivered)
	if err == sql.ErrNoRows {
		return Event{}, false, nil
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("get webhook event: %w", err)
	}
	e.CreatedAt, e.NextAttempt = fromMS(created), fromMS(runAt)
	if delivered.Valid {
		e.DeliveredAt = fromMS(delivered.Int64)
	}
	return e, true, nil
}

// Depths returns how many events are in each state (one being posted is
// pending); every state is present.
func (c *Client) Depths(ctx context.Context) (map[State]int, error) {
	d, err := c.jobs.Depths(ctx)
	if err != nil {
		return nil, err
	}
	return map[State]int{Pending: d[string(Pending)], Delivered: d[string(Delivered)], Dead: d[string(Dead)]}, nil
}

// Jobs is the events' queue as the job engine sees it (kind "webhook"), for
// its metrics and administration.
func (c *Client) Jobs() *jobs.Queue { return c.jobs }

// RetryDead puts every dead event back to pending with its attempts reset
// and returns how many.
func (c *Client) RetryDead(ctx context.Context) (int64, error) {
	n, err := c.jobs.RetryDead(ctx)
	if n > 0 {
		c.Wake()
	}
	return n, err
}

// Prune deletes delivered events older than Retention and returns how many.
func (c *Client) Prune(ctx context.Context) (int64, error) {
	return c.jobs.Prune(ctx, c.opts.Now().Add(-c.opts.Retention))
}
