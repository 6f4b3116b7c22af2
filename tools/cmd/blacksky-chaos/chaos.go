package main

import (
	"context"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"sync"
	"syscall"
	"time"
)

// action is one way of breaking things.
type action struct {
	name string
	run  func(ctx context.Context, h *harness, rng *rand.Rand) error
}

// faultAction injects a sandbox fault; lasting kinds last a random few seconds.
func faultAction(kind string, minD, maxD time.Duration) action {
	return action{name: "fault " + kind, run: func(ctx context.Context, h *harness, rng *rand.Rand) error {
		return h.sb.fault(ctx, kind, randDuration(rng, minD, maxD))
	}}
}

// lastingFault injects a fault for a random few seconds and returns when it
// is over: a fault that leaves a logged-in status behind while killing the
// connections must not overlap the next action, which may need one (a
// "replaced" sent to nobody is one that never happened).
func lastingFault(kind string, minD, maxD time.Duration) action {
	return action{name: "fault " + kind, run: func(ctx context.Context, h *harness, rng *rand.Rand) error {
		d := randDuration(rng, minD, maxD)
		if err := h.sb.fault(ctx, kind, d); err != nil {
			return err
		}
		return poll(ctx, d+10*time.Second, func() bool {
			var active []struct{ Kind string }
			if code := doJSON(ctx, "GET", h.sb.url+"/control/faults", nil, &active); code != http.StatusOK {
				return false
			}
			for _, f := range active {
				if f.Kind == kind {
					return false
				}
			}
			return true
		})
	}}
}

// actions lists every chaos action. logout and device_removed are left
// out: they unlink the device, which needs a person to scan a QR code again;
// the queue keeps messages across that, but it is not an outage the bot can
// ride out by itself.
func actions(cfg config) []action {
	as := []action{
		faultAction("drop", 0, 0),
		onConnected(faultAction("restart", 0, 0)),
		onConnected(faultAction("stream_503", 0, 0)),
		faultAction("ban", 2*time.Second, 4*time.Second),
		faultAction("refuse", 2*time.Second, 4*time.Second),
		faultAction("blackhole_pings", 3*time.Second, 12*time.Second),
		faultAction("withhold_acks", 2*time.Second, 5*time.Second),
		faultAction("down", 2*time.Second, 5*time.Second),
		lastingFault("kill_on_login", 2*time.Second, 5*time.Second),
		// Dead but connected: ACK_TIMEOUT (1 s, half OUTGOING_SEND_TIMEOUT)
		// ends a stuck connection at the next send; SILENCE_TIMEOUT (1 m)
		// a deaf one, unless another fault ends it first.
		onConnected(faultAction("stuck_sends", 0, 0)),
		onConnected(faultAction("deaf", 0, 0)),
		// The chaos contacts never write, so every message waits out the lock.
		faultAction("reachout_timelock", 2*time.Second, 5*time.Second),
		onConnected(action{name: "fault undecryptable", run: undecryptable}),
		onConnected(action{name: "fault replaced", run: replaced}),
		onConnected(action{name: "fault outdated", run: outdated}),
		onConnected(action{name: "SIGKILL leader", run: func(ctx context.Context, h *harness, _ *rand.Rand) error {
			return h.stopLeader(ctx, syscall.SIGKILL)
		}}),
		onConnected(action{name: "SIGTERM leader", run: func(ctx context.Context, h *harness, _ *rand.Rand) error {
			return h.stopLeader(ctx, syscall.SIGTERM)
		}}),
	}
	if cfg.restartPG {
		as = append(as, action{name: "restart PostgreSQL", run: restartPostgres})
	}
	return as
}

// onConnected waits (a bounded time) for a bot to lead and be connected
// before a, for the actions that only do something to a logged-in
// connection: a stream error sent while the bot is still reconnecting from
// the previous action would hit nobody.
func onConnected(a action) action {
	run := a.run
	a.run = func(ctx context.Context, h *harness, rng *rand.Rand) error {
		if err := h.waitConnected(ctx, 20*time.Second); err != nil {
			return err
		}
		return run(ctx, h, rng)
	}
	return a
}

// waitConnected waits until a bot leads and is connected to WhatsApp, and
// makes it the known leader.
func (h *harness) waitConnected(ctx context.Context, d time.Duration) error {
	err := poll(ctx, d, func() bool {
		for i, b := range h.bots {
			if st, leads := b.status(ctx); leads && st.State == "connected" {
				h.setLeader(i)
				return true
			}
		}
		return false
	})
	if err != nil {
		return fmt.Errorf("no bot connected: %w", err)
	}
	return nil
}

// replaced: another client takes the session. The bot then waits at least
// REPLACED_BACKOFF (30 s or more, by design, so two clients never fight);
// what an operator does next is stop the intruder, and the standby takes
// over at once when the waiting holder is stopped, so the run does that.
func replaced(ctx context.Context, h *harness, _ *rand.Rand) error {
	i, b := h.leaderBot()
	// The sandbox sends the conflict to the connections logged in at that
	// moment; a bot between two connections (redialling a dead one) gets
	// none, so the fault is sent again until the bot has met it (a CI run
	// saw the bot "connected" 10 s after a single one).
	var err error
	for try := 0; try < 5; try++ {
		if ferr := h.sb.fault(ctx, "replaced", 0); ferr != nil {
			return ferr
		}
		if err = h.waitState(ctx, b, "replaced", 2*time.Second); err == nil {
			return h.stopLeader(ctx, syscall.SIGTERM)
		}
	}
	return fmt.Errorf("bot%d after replaced: %w", i+1, err)
}

// outdated: WhatsApp rejects the client version. The bot stops trying until
// restarted (an upgrade); the run lifts the fault and restarts it. The fault
// lasts until some bot has met it: one that lasted a fixed 3 s missed a bot
// whose reconnect came later (a storage fault just before had moved the
// lease, and the new holder waited out the hand-over first).
func outdated(ctx context.Context, h *harness, _ *rand.Rand) error {
	if err := h.sb.fault(ctx, "outdated", 0); err != nil {
		return err
	}
	hit := -1
	err := poll(ctx, 20*time.Second, func() bool {
		for i, b := range h.bots {
			if st, _ := b.status(ctx); st.State == "outdated" {
				hit = i
				return true
			}
		}
		return false
	})
	if cerr := h.sb.clearFaults(ctx); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("no bot reached state \"outdated\": %w", err)
	}
	h.setLeader(hit)
	return h.stopLeader(ctx, syscall.SIGTERM)
}

// undecryptableContact writes to the bot in the undecryptable action; it is
// not one of the contacts the sender writes to, so the report ignores it.
const undecryptableContact = "15559990001"

// undecryptable: a contact's command reaches the bot undecryptable; the
// bot asks the phone for it, the phone resends it, and the bot answers.
func undecryptable(ctx context.Context, h *harness, _ *rand.Rand) error {
	n := undecryptableContact
	if code := doJSON(ctx, "GET", h.sb.url+"/control/contacts/"+n, nil, nil); code != http.StatusOK {
		if code := doJSON(ctx, "POST", h.sb.url+"/control/contacts", map[string]any{"number": n}, nil); code != http.StatusCreated {
			return fmt.Errorf("add contact %s: HTTP %d", n, code)
		}
	}
	before, err := h.sb.inbox(ctx, n)
	if err != nil {
		return err
	}
	if err := h.sb.fault(ctx, "undecryptable", 0); err != nil {
		return err
	}
	if code := doJSON(ctx, "POST", h.sb.url+"/control/contacts/"+n+"/send", map[string]string{"text": ".ping"}, nil); code != http.StatusOK {
		return fmt.Errorf("contact %s sends .ping: HTTP %d", n, code)
	}
	// The .ping may land on a connection an earlier deaf fault left deaf;
	// with nothing to send, the bot ends it once it has heard nothing for
	// SILENCE_TIMEOUT, checked every quarter of it (a run of seed
	// 1796192988911087851 waited 73 s; 30 s had been allowed).
	err = poll(ctx, silenceTimeout+30*time.Second, func() bool {
		in, err := h.sb.inbox(ctx, n)
		return err == nil && len(in) > len(before)
	})
	if err != nil {
		return fmt.Errorf("no answer to a .ping that arrived undecryptable: %w", err)
	}
	return nil
}

// restartPostgres restarts the local cluster under the bots' feet.
func restartPostgres(ctx context.Context, _ *harness, _ *rand.Rand) error {
	versions, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(versions) == 0 {
		return fmt.Errorf("restart PostgreSQL: no cluster in /etc/postgresql: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "pg_ctlcluster", "--skip-systemctl-redirect", versions[0].Name(), "main", "restart").CombinedOutput()
	if err != nil {
		return fmt.Errorf("restart PostgreSQL: %w: %s", err, out)
	}
	return nil
}

// stopLeader signals the leading bot and waits until it is gone; the bot's
// loop starts it again, and the other bot takes over meanwhile.
func (h *harness) stopLeader(ctx context.Context, sig syscall.Signal) error {
	i, b := h.leaderBot()
	p := b.signal(sig)
	if p == nil {
		return fmt.Errorf("bot%d is not running", i+1)
	}
	if code, err := p.Wait(20 * time.Second); err == nil {
		if sig == syscall.SIGTERM && code != 0 {
			return fmt.Errorf("bot%d exited %s after SIGTERM", i+1, p.State())
		}
		return nil
	}
	p.Kill()
	return fmt.Errorf("bot%d did not exit within 20 s of %s", i+1, sig)
}

// waitState waits until b reports state in /status.
func (h *harness) waitState(ctx context.Context, b *bot, state string, d time.Duration) error {
	var last string
	err := poll(ctx, d, func() bool {
		st, _ := b.status(ctx)
		last = st.State
		return st.State == state
	})
	if err != nil {
		return fmt.Errorf("state %q not reached (last %q): %w", state, last, err)
	}
	return nil
}

// chaos runs actions in seeded random order: every action once per round,
// so a run long enough for one round has done each at least once.
type chaos struct {
	h   *harness
	rng *rand.Rand
	as  []action

	mu     sync.Mutex
	counts map[string]int
	errs   []string
}

func newChaos(h *harness) *chaos {
	return &chaos{h: h, rng: rand.New(rand.NewSource(h.cfg.seed)), as: append(actions(h.cfg), storageActions(h)...), counts: map[string]int{}}
}

// run breaks things until until passes; a first round not finished by then
// is finished (within ctx), so every run does every action at least once.
func (c *chaos) run(ctx context.Context, until time.Time) {
	for round := 0; ; round++ {
		for _, i := range c.rng.Perm(len(c.as)) {
			if round > 0 && !time.Now().Before(until) {
				return
			}
			wait := randDuration(c.rng, c.h.cfg.interval/2, c.h.cfg.interval*3/2)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			c.do(ctx, c.as[i])
		}
		if !time.Now().Before(until) {
			return
		}
	}
}

func (c *chaos) do(ctx context.Context, a action) {
	started := time.Now()
	err := a.run(ctx, c.h, c.rng)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil && ctx.Err() == nil {
		c.errs = append(c.errs, fmt.Sprintf("%s: %v", a.name, err))
		c.h.log.Warn("chaos action failed", "action", a.name, "err", err)
		return
	}
	c.counts[a.name]++
	c.h.log.Info("chaos", "action", a.name, "took", time.Since(started).Round(time.Millisecond))
}

func (c *chaos) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.counts {
		n += v
	}
	return n
}

// summary returns the count of each action (zero for those never done) and the failures.
func (c *chaos) summary() (map[string]int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, a := range c.as {
		out[a.name] = c.counts[a.name]
	}
	return out, append([]string(nil), c.errs...)
}

func randDuration(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rng.Int63n(int64(hi-lo)))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
