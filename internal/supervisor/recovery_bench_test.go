package supervisor_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	. "github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// contender is a paired client under test: the supervisor at its
// production defaults, or whatsmeow with its built-in reconnect.
type contender struct {
	srv *sandbox.Server
	// connected waits for a login that happened after the given time and
	// returns when it happened.
	connected func(ctx context.Context, after time.Time) (time.Time, error)
}

// recoveryScenario makes one fault and returns the lag from the moment
// the server could be reached again to the next login.
type recoveryScenario func(b *testing.B, c contender) time.Duration

// BenchmarkRecoveryLag measures how long after a fault ends the bot is
// logged in again, for the supervisor at the production defaults (1 s
// base, 60 s max, 500 ms probes) and for whatsmeow's built-in reconnect.
// Run it with -benchtime=Nx for N faults per scenario; docs/RECONNECT.md
// has the figures. The sleeps shape the faults (a stable link, a recovery
// 3 s ago); nothing waits on them for a result.
func BenchmarkRecoveryLag(b *testing.B) {
	scenarios := []struct {
		name string
		run  recoveryScenario
	}{
		{"drop-stable", dropAfter(1500 * time.Millisecond)},
		{"drop-3s-after-recovery", afterRecovery(func(b *testing.B, c contender) time.Duration { return dropAfter(0)(b, c) })},
		{"outage=3s-3s-after-recovery", afterRecovery(outage(3 * time.Second))},
		{"outage=1s", outage(time.Second)},
		{"outage=3s", outage(3 * time.Second)},
		{"outage=10s", outage(10 * time.Second)},
	}
	for _, sc := range scenarios {
		for _, mode := range []string{"supervisor", "whatsmeow"} {
			b.Run(mode+"/"+sc.name, func(b *testing.B) {
				c := newContender(b, mode)
				var lags []time.Duration
				for b.Loop() {
					lags = append(lags, sc.run(b, c))
				}
				slices.Sort(lags)
				b.ReportMetric(ms(lags[len(lags)/2]), "p50_ms")
				b.ReportMetric(ms(lags[min(len(lags)-1, len(lags)*99/100)]), "p99_ms")
				b.ReportMetric(ms(lags[len(lags)-1]), "max_ms")
			})
		}
	}
}

// BenchmarkKillingServer counts connection attempts while the server
// accepts every connection and kills it right after its login, for 20 s
// per iteration: the attempt limit must hold them to one a second or fewer.
func BenchmarkKillingServer(b *testing.B) {
	const window = 20 * time.Second
	for _, mode := range []string{"supervisor", "whatsmeow"} {
		b.Run(mode, func(b *testing.B) {
			c := newContender(b, mode)
			var rates []float64
			for b.Loop() {
				time.Sleep(1500 * time.Millisecond)
				seq := c.srv.LastSeq()
				if err := c.srv.Inject(sandbox.Fault{Kind: sandbox.FaultKillOnLogin, Duration: window}); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				end := start.Add(window)
				if _, err := c.connected(benchCtx(b, window+3*time.Minute), end); err != nil {
					b.Fatalf("not connected after the killing stopped: %v", err)
				}
				n := 0
				for _, e := range c.srv.Events() {
					if e.Seq > seq && e.Kind == sandbox.EventConnOpened && e.Time.Before(end) {
						n++
					}
				}
				rates = append(rates, float64(n)/window.Seconds())
			}
			slices.Sort(rates)
			var sum float64
			for _, r := range rates {
				sum += r
			}
			b.ReportMetric(sum/float64(len(rates)), "attempts/s")
			b.ReportMetric(rates[len(rates)-1], "max_attempts/s")
		})
	}
}

// dropAfter waits settle on a connected link, then closes the connection;
// the lag runs from the close.
func dropAfter(settle time.Duration) recoveryScenario {
	return func(b *testing.B, c contender) time.Duration {
		time.Sleep(settle)
		at := time.Now()
		if err := c.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
			b.Fatal(err)
		}
		back, err := c.connected(benchCtx(b, 3*time.Minute), at)
		if err != nil {
			b.Fatalf("not connected after the drop: %v", err)
		}
		return back.Sub(at)
	}
}

// outage takes the server down for d on a link that has been up 1.5 s;
// the lag runs from the server's return.
func outage(d time.Duration) recoveryScenario {
	return func(b *testing.B, c contender) time.Duration {
		time.Sleep(1500 * time.Millisecond)
		return down(b, c, d)
	}
}

func down(b *testing.B, c contender, d time.Duration) time.Duration {
	at := time.Now()
	if err := c.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDown, Duration: d}); err != nil {
		b.Fatal(err)
	}
	back, err := c.connected(benchCtx(b, d+3*time.Minute), at)
	if err != nil {
		b.Fatalf("not connected after the outage: %v", err)
	}
	return back.Sub(at.Add(d))
}

// afterRecovery recovers from a 5 s outage, waits 3 s, then runs next:
// the flap after which the old supervisor stayed down for 38 s.
func afterRecovery(next recoveryScenario) recoveryScenario {
	return func(b *testing.B, c contender) time.Duration {
		time.Sleep(1500 * time.Millisecond)
		down(b, c, 5*time.Second)
		time.Sleep(3 * time.Second)
		return next(b, c)
	}
}

func benchCtx(b *testing.B, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	b.Cleanup(cancel)
	return ctx
}

func newContender(b *testing.B, mode string) contender {
	if mode == "whatsmeow" {
		return builtinClient(b)
	}
	h := newHarness(b, func(o *Options) {
		o.Backoff = backoff.Policy{Base: time.Second, Max: time.Minute}
		o.ProbeInterval = 500 * time.Millisecond
	})
	h.pair()
	return contender{srv: h.srv, connected: func(ctx context.Context, after time.Time) (time.Time, error) {
		var at time.Time
		err := h.sup.WaitFor(ctx, func(st Status, _ Pairing) bool {
			at = st.Since
			return st.State == Connected && st.Since.After(after)
		})
		return at, err
	}}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// builtinClient pairs a plain whatsmeow client that reconnects by itself.
func builtinClient(b *testing.B) contender {
	ctx := context.Background()
	srv := testkit.Sandbox(b, sandbox.Options{})
	st := testkit.Store(b, store.SQLite)
	cli := whatsmeow.NewClient(st.Container().NewDevice(), nil)
	if err := srv.Trust().Apply(cli); err != nil {
		b.Fatal(err)
	}
	connectedAt := make(chan time.Time, 1024)
	qr := make(chan string, 1)
	cli.AddEventHandler(func(evt any) {
		switch e := evt.(type) {
		case *events.Connected:
			select {
			case connectedAt <- time.Now():
			default:
			}
		case *events.QR:
			qr <- e.Codes[0]
		}
	})
	if err := cli.Connect(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cli.Disconnect)
	if err := srv.ScanQR(ctx, <-qr); err != nil {
		b.Fatal(err)
	}
	<-connectedAt
	return contender{srv: srv, connected: func(ctx context.Context, after time.Time) (time.Time, error) {
		for {
			select {
			case at := <-connectedAt:
				if at.After(after) {
					return at, nil
				}
			case <-ctx.Done():
				return time.Time{}, fmt.Errorf("wait for login: %w", ctx.Err())
			}
		}
	}}
}
