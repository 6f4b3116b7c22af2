package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// sentMsg is a message the API accepted.
type sentMsg struct {
	Contact    string
	Seq        int
	Text       string
	ID         int64
	WAID       string
	EnqueuedAt time.Time
}

// sender posts messages to the bots' API, one contact at a time in order:
// a contact's next message waits until the previous one was accepted, so
// the order of acceptance is the order the queue must keep.
type sender struct {
	h     *harness
	runID string

	mu          sync.Mutex
	msgs        []sentMsg
	retries     int      // POSTs that had to be repeated (same idempotency key)
	rejected    []string // answers that refused a message for good (4xx)
	unconfirmed []string // texts whose POST never got an answer before the end
}

// finishGrace is how long, after the chaos, a message whose POST is still
// failing keeps being retried before it counts as unconfirmed.
const finishGrace = time.Minute

func newSender(h *harness) *sender { return &sender{h: h, runID: randomHex(4)} }

// run sends until stop is closed, then finishes the POSTs in flight.
func (s *sender) run(ctx context.Context, stop <-chan struct{}) {
	tokens := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.pace(ctx, stop, tokens) })
	finish, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// In-flight POSTs get a grace period after the chaos ends.
		select {
		case <-stop:
		case <-finish.Done():
			return
		}
		select {
		case <-time.After(finishGrace):
		case <-finish.Done():
		}
		cancel()
	}()
	for _, c := range append(append([]string(nil), s.h.contacts...), s.h.addr.nobody...) {
		wg.Go(func() { s.contact(finish, c, tokens) })
	}
	wg.Wait()
}

// pace hands out one token per 1/rate; contacts share them, so the total
// rate holds however many contacts there are.
func (s *sender) pace(ctx context.Context, stop <-chan struct{}, tokens chan<- struct{}) {
	defer close(tokens)
	t := time.NewTicker(time.Duration(float64(time.Second) / s.h.cfg.rate))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
		select {
		case tokens <- struct{}{}:
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// contact sends numbered messages to one contact while tokens flow.
func (s *sender) contact(ctx context.Context, number string, tokens <-chan struct{}) {
	for seq := 1; ; seq++ {
		if _, ok := <-tokens; !ok {
			return
		}
		text := fmt.Sprintf("chaos %s to %s #%05d", s.runID, number, seq)
		key := fmt.Sprintf("chaos-%s-%s-%d", s.runID, number, seq)
		m, err := s.post(ctx, s.h.recipient(number, seq), text, key)
		m.Contact = number
		s.mu.Lock()
		switch {
		case err == nil:
			m.Seq = seq
			s.msgs = append(s.msgs, m)
		case ctx.Err() != nil:
			s.unconfirmed = append(s.unconfirmed, text)
		default:
			s.rejected = append(s.rejected, err.Error())
		}
		s.mu.Unlock()
		if ctx.Err() != nil {
			return
		}
	}
}

// postAnswer is the part of the API's answer the run keeps.
type postAnswer struct {
	ID        int64     `json:"id"`
	WAID      string    `json:"wa_id"`
	CreatedAt time.Time `json:"created_at"`
	Error     string    `json:"error"`
}

// post queues one message, retrying with the same idempotency key (on the
// leader first, then the other bot) until an answer says it is stored.
func (s *sender) post(ctx context.Context, to, text, key string) (sentMsg, error) {
	body := map[string]string{"to": to, "text": text, "idempotency_key": key}
	for attempt := 0; ; attempt++ {
		li, _ := s.h.leaderBot()
		b := s.h.bots[(li+attempt)%len(s.h.bots)]
		var a postAnswer
		code := doJSON(ctx, "POST", b.url("/api/v1/messages"), body, &a)
		switch {
		case code == http.StatusAccepted || code == http.StatusOK:
			if attempt > 0 {
				s.mu.Lock()
				s.retries += attempt
				s.mu.Unlock()
			}
			at := a.CreatedAt
			if at.IsZero() {
				at = time.Now()
			}
			return sentMsg{Contact: to, Text: text, ID: a.ID, WAID: a.WAID, EnqueuedAt: at}, nil
		case code >= 400 && code < 500:
			return sentMsg{}, fmt.Errorf("%s refused %q: HTTP %d %s", b.name, text, code, a.Error)
		}
		// No answer, or a 5xx (database restarting, backlog full): the
		// message may or may not be stored; the same key makes the retry safe.
		select {
		case <-ctx.Done():
			return sentMsg{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *sender) accepted() []sentMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentMsg(nil), s.msgs...)
}
