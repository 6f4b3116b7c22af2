package jobs

import "github.com/blacksky-bot/blacksky/internal/backoff"

// Policy is how a queue retries: up to MaxAttempts claims, spaced by Backoff
// (capped exponential with full jitter).
type Policy struct {
	MaxAttempts int
	Backoff     backoff.Policy
}
