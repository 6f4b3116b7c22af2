package supervisor

import (
	"context"
	"time"
)

// The attempt limit: a token bucket in front of every connection attempt
// that may reach a server, that is all but those after an attempt nothing
// answered (run.go Run). A connection that logged in and dropped is redialled at
// once, and a login resets the backoff, so a server that accepts each
// connection and kills it around its login would otherwise see attempts in
// a tight loop (TestKillingServerIsNotHammered). A few may go at once (a
// drop, then a second one while the link settles), and sustained attempts
// stay below one a second: one every 1.25 s, so that even counting the
// burst a killing server sees at most one a second over 15 s or more
// (BenchmarkKillingServer, docs/RECONNECT.md).
const (
	attemptBurst    = 3
	attemptInterval = 1250 * time.Millisecond
)

type attemptLimit struct {
	tokens float64
	last   time.Time
}

func newAttemptLimit(now time.Time) *attemptLimit {
	return &attemptLimit{tokens: attemptBurst, last: now}
}

// delay takes a token at now and returns how long to wait for it.
func (a *attemptLimit) delay(now time.Time) time.Duration {
	a.tokens = min(attemptBurst, a.tokens+float64(now.Sub(a.last))/float64(attemptInterval))
	a.last = now
	a.tokens--
	if a.tokens >= 0 {
		return 0
	}
	return time.Duration(-a.tokens * float64(attemptInterval))
}

// wait waits for a token; it reports false when ctx ended first.
func (a *attemptLimit) wait(ctx context.Context) bool {
	if d := a.delay(time.Now()); d > 0 {
		sleep(ctx, d)
	}
	return ctx.Err() == nil
}
