// Package backoff computes retry delays: exponential growth from a base,
// capped, with full jitter so that many clients retrying after one outage do
// not all come back at the same instant.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff with full jitter.
type Policy struct {
	Base time.Duration // ceiling of the first delay
	Max  time.Duration // no delay is longer than this
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// Ceiling is the largest delay attempt n (counting from 0) may wait.
func (p Policy) Ceiling(n int) time.Duration {
	if p.Base <= 0 {
		return 0
	}
	d := p.Base
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2
	}
	if p.Max > 0 && d > p.Max {
		d = p.Max
	}
	return d
}

// Delay is a random delay in [0, Ceiling(n)) for attempt n.
func (p Policy) Delay(n int) time.Duration {
	r := p.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(p.Ceiling(n)))
}
