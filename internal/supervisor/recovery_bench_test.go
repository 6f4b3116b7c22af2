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

// BenchmarkRecoveryLag measures how long after the sandbox comes back from
// an outage the bot is connected again: with this supervisor at the default
// policy (1 s base, 60 s max, 500 ms probes) and with whatsmeow's built-in
// reconnect. Run it with -benchtime=Nx for N outages per length; docs/RECONNECT.md
// has the figures.
func BenchmarkRecoveryLag(b *testing.B) {
	for _, outage := range []time.Duration{time.Second, 3 * time.Second, 10 * time.Second} {
		for _, mode := range []string{"supervisor", "whatsmeow"} {
			b.Run(fmt.Sprintf("%s/outage=%s", mode, outage), func(b *testing.B) {
				var connected func(ctx context.Context, after time.Time) (time.Time, error)
				var srv *sandbox.Server
				if mode == "supervisor" {
					h := newHarness(b, func(o *Options) {
						o.Backoff = backoff.Policy{Base: time.Second, Max: time.Minute}
						o.ProbeInterval = 500 * time.Millisecond
					})
					srv = h.srv
					h.pair()
					connected = func(ctx context.Context, after time.Time) (time.Time, error) {
						var at time.Time
						err := h.sup.WaitFor(ctx, func(st Status, _ Pairing) bool {
							at = st.Since
							return st.State == Connected && st.Since.After(after)
						})
						return at, err
					}
				} else {
					srv, connected = builtinClient(b)
				}
				var lags []time.Duration
				for b.Loop() {
					// Space outages out: one right after a reconnect is a
					// flapping link, which the supervisor rightly backs off.
					time.Sleep(1500 * time.Millisecond)
					down := time.Now()
					if err := srv.Inject(sandbox.Fault{Kind: sandbox.FaultDown, Duration: outage}); err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), outage+3*time.Minute)
					at, err := connected(ctx, down)
					cancel()
					if err != nil {
						b.Fatalf("not connected after the outage: %v", err)
					}
					lags = append(lags, at.Sub(down.Add(outage)))
				}
				slices.Sort(lags)
				b.ReportMetric(ms(lags[len(lags)/2]), "p50_ms")
				b.ReportMetric(ms(lags[min(len(lags)-1, len(lags)*99/100)]), "p99_ms")
				b.ReportMetric(ms(lags[len(lags)-1]), "max_ms")
			})
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// builtinClient pairs a plain whatsmeow client that reconnects by itself.
func builtinClient(b *testing.B) (*sandbox.Server, func(context.Context, time.Time) (time.Time, error)) {
	ctx := context.Background()
	srv := testkit.Sandbox(b, sandbox.Options{})
	st := testkit.Store(b, store.SQLite)
	cli := whatsmeow.NewClient(st.Container().NewDevice(), nil)
	if err := srv.Trust().Apply(cli); err != nil {
		b.Fatal(err)
	}
	connectedAt := make(chan time.Time, 16)
	qr := make(chan string, 1)
	cli.AddEventHandler(func(evt any) {
		switch e := evt.(type) {
		case *events.Connected:
			connectedAt <- time.Now()
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
	return srv, func(ctx context.Context, after time.Time) (time.Time, error) {
		for {
			select {
			case at := <-connectedAt:
				if at.After(after) {
					return at, nil
				}
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
	}
}
