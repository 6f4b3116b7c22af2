package outgoing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// Gate tells the dispatcher whether sending is allowed now: in production
// the connection is up and the account not under a temporary ban.
type Gate interface {
	// Open reports whether a send may start now.
	Open() bool
	// WaitOpen blocks until the gate is open or ctx ends.
	WaitOpen(ctx context.Context) error
}

// SwitchGate is a Gate opened and closed by hand, for tests, the sandbox,
// or wiring to an event source; the zero value is closed.
type SwitchGate struct {
	mu      sync.Mutex
	open    bool
	changed chan struct{} // closed and replaced on every change
	waiting atomic.Int64
}

// NewSwitchGate returns a gate in the given position.
func NewSwitchGate(open bool) *SwitchGate {
	return &SwitchGate{open: open}
}

// Set opens or closes the gate, waking waiters.
func (g *SwitchGate) Set(open bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open == open {
		return
	}
	g.open = open
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}

// Open reports whether the gate is open.
func (g *SwitchGate) Open() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open
}

// Waiting reports how many callers are blocked in WaitOpen.
func (g *SwitchGate) Waiting() int { return int(g.waiting.Load()) }

// WaitOpen blocks until the gate is open or ctx ends.
func (g *SwitchGate) WaitOpen(ctx context.Context) error {
	for {
		g.mu.Lock()
		if g.open {
			g.mu.Unlock()
			return nil
		}
		if g.changed == nil {
			g.changed = make(chan struct{})
		}
		ch := g.changed
		g.mu.Unlock()
		g.waiting.Add(1)
		select {
		case <-ctx.Done():
			g.waiting.Add(-1)
			return fmt.Errorf("wait for send gate: %w", ctx.Err())
		case <-ch:
			g.waiting.Add(-1)
		}
	}
}

// SupervisorGate opens while the supervisor reports the account connected.
// A TemporaryBan moves the supervisor to Banned until the ban expires, so
// the ban closes the gate for its whole length.
type SupervisorGate struct {
	Supervisor *supervisor.Supervisor
}

func connected(st supervisor.Status, _ supervisor.Pairing) bool {
	return st.State == supervisor.Connected
}

// Open reports whether the account is connected now.
func (g SupervisorGate) Open() bool { return connected(g.Supervisor.Status(), supervisor.Pairing{}) }

// WaitOpen blocks until the account is connected or ctx ends.
func (g SupervisorGate) WaitOpen(ctx context.Context) error {
	return g.Supervisor.WaitFor(ctx, connected)
}
