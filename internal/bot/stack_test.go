package bot_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/bot"
	"github.com/blacksky-bot/blacksky/internal/outgoing"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	"github.com/blacksky-bot/blacksky/internal/store"
	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/webhook"
)

// linkedStack is a bot's connection side against the sandbox: a
// supervisor whose clients carry the bot's configuration, the outgoing queue's
// delivery and the webhook sender, running until stop, paired and logged
// in. The bot's own worker is the test's to start (b.Run), so a test can
// look at what happens before any handling.
type linkedStack struct {
	sup  *supervisor.Supervisor
	stop func()
	ctx  context.Context
	wg   *sync.WaitGroup
}

// run runs f beside the stack until stop.
func (s *linkedStack) run(f func(context.Context) error) {
	s.wg.Go(func() { _ = f(s.ctx) })
}

func startLinked(t *testing.T, ctx context.Context, srv *sandbox.Server, st *store.Store, session string,
	b *bot.Bot, q *outgoing.Queue, wh *webhook.Client, log *slog.Logger) *linkedStack {
	t.Helper()
	trust := srv.Trust()
	probe, err := trust.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	sup, err := supervisor.New(ctx, supervisor.Options{
		Store: st, SessionID: session, Logger: log, ProbeClient: probe,
		Backoff: backoff.Policy{Base: 50 * time.Millisecond, Max: 200 * time.Millisecond},
		Configure: func(cli *whatsmeow.Client) error {
			if err := trust.Apply(cli); err != nil {
				return err
			}
			return b.Configure(cli)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { sup.Run(runCtx) })
	wg.Go(func() {
		q.Run(runCtx, &outgoing.WhatsAppSender{Client: sup.Client}, outgoing.SupervisorGate{Supervisor: sup})
	})
	wg.Go(func() { wh.Run(runCtx) })
	s := &linkedStack{sup: sup, ctx: runCtx, wg: &wg, stop: func() {
		srv.Close() // first: see the supervisor e2e test on whatsmeow's teardown race
		cancel()
		wg.Wait()
	}}
	if err := sup.WaitFor(ctx, func(_ supervisor.Status, p supervisor.Pairing) bool { return p.QR != "" }); err != nil {
		s.stop()
		t.Fatal("no QR code:", err)
	}
	if err := srv.ScanQR(ctx, sup.Pairing().QR); err != nil {
		s.stop()
		t.Fatal(err)
	}
	s.connected(t, ctx)
	return s
}

// connected waits until the supervisor is logged in.
func (s *linkedStack) connected(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := s.sup.WaitFor(ctx, func(st supervisor.Status, _ supervisor.Pairing) bool { return st.State == supervisor.Connected }); err != nil {
		t.Fatal(err)
	}
}
