package supervisor

import (
	"testing"
	"time"
)

// A server that accepts every connection and kills it at once gets at most
// attemptBurst attempts at once and then one per attemptInterval, since reconnects
// after a login are immediate.
func TestAttemptLimit(t *testing.T) {
	start := time.Unix(1000, 0)
	a := newAttemptLimit(start)
	now := start
	var waited time.Duration
	for i := range 13 {
		d := a.delay(now)
		if i < attemptBurst && d != 0 {
			t.Errorf("attempt %d waits %v; the first %d go at once", i+1, d, attemptBurst)
		}
		now = now.Add(d) // the caller waits d, then attempts, and fails at once
		waited += d
	}
	if want := 10 * attemptInterval; waited < want-time.Millisecond || waited > want+time.Millisecond {
		t.Errorf("13 attempts in a tight loop waited %v in all; want %v (one per interval after the first %d)", waited, want, attemptBurst)
	}
	// A link that stayed up refills the bucket: the next drop is free again.
	if d := a.delay(now.Add(time.Hour)); d != 0 {
		t.Errorf("after an hour up the next attempt waits %v", d)
	}
}
