package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/types/events"
)

// faultCase injects one fault into a paired client and checks the
// whatsmeow events the protocol notes predict.
type faultCase struct {
	name  string
	fault Fault
	check func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64)
	// noAutoReconnect pairs the client with EnableAutoReconnect off.
	noAutoReconnect bool
}

func expectReconnect(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
	t.Helper()
	waitEvent[*events.Disconnected](t, ctx, b.rec, mark)
	waitEvent[*events.Connected](t, ctx, b.rec, mark)
	if _, err := s.WaitEvent(ctx, EventLogin, seq); err != nil {
		t.Fatal(err)
	}
}

// TestFaultsRecoverable runs, on one client, the faults after which whatsmeow reconnects by itself.
func TestFaultsRecoverable(t *testing.T) {
	t.Parallel()
	runOnOneClient(t, recoverableFaults)
}

// recoverableFaults are the faults after which whatsmeow reconnects by itself.
var recoverableFaults = []faultCase{
	{name: "drop", fault: Fault{Kind: FaultDrop}, check: expectReconnect},
	{name: "stream_503", fault: Fault{Kind: FaultStream503}, check: expectReconnect},
	{name: "restart", fault: Fault{Kind: FaultRestart}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitEvent[*events.Connected](t, ctx, b.rec, mark)
		for _, e := range b.rec.since(mark) {
			if _, ok := e.(*events.Disconnected); ok {
				t.Error("515 produced a Disconnected event")
			}
		}
	}},
	{name: "refuse", fault: Fault{Kind: FaultRefuse, Duration: time.Second}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		if err := s.Inject(Fault{Kind: FaultDrop}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitEvent(ctx, EventRefused, seq); err != nil {
			t.Fatal(err)
		}
		waitEvent[*events.Connected](t, ctx, b.rec, mark)
	}},
	{name: "down", fault: Fault{Kind: FaultDown, Duration: time.Second}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitEvent[*events.Disconnected](t, ctx, b.rec, mark)
		if _, err := s.WaitEvent(ctx, EventRefused, seq); err != nil {
			t.Fatal(err)
		}
		waitEvent[*events.Connected](t, ctx, b.rec, mark)
	}},
	{name: "withhold_acks", fault: Fault{Kind: FaultWithholdAcks}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		ct, err := s.AddContact("5511987654321")
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.cli.SendMessage(ctx, ct.JID(), textMsg("lost ack"), whatsmeow.SendRequestExtra{Timeout: 500 * time.Millisecond})
		if !errors.Is(err, whatsmeow.ErrMessageTimedOut) {
			t.Fatalf("send error = %v, want ErrMessageTimedOut", err)
		}
		// The message itself was delivered: a retry with the same ID would be a duplicate.
		if in := ct.Inbox(); len(in) != 1 || in[0].Text != "lost ack" {
			t.Fatalf("inbox = %+v", in)
		}
		s.ClearFaults()
		// With acks flowing again a send completes.
		if _, err := b.cli.SendMessage(ctx, ct.JID(), textMsg("acked")); err != nil {
			t.Fatal(err)
		}
	}},
	{name: "withhold_acks_delay", fault: Fault{Kind: FaultWithholdAcks, Duration: time.Second}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		ct, err := s.AddContact("5511987654322")
		if err != nil {
			t.Fatal(err)
		}
		// A bounded withhold only delays the ack: the send completes once it ends.
		start := time.Now()
		if _, err := b.cli.SendMessage(ctx, ct.JID(), textMsg("late ack")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitEvent(ctx, EventAckWithheld, seq); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 500*time.Millisecond {
			t.Errorf("send returned after %s although its ack was withheld", d)
		}
	}},
	// The connection stays up; reachout_test.go has the rest of the lock.
	{name: "reachout_timelock", fault: Fault{Kind: FaultReachoutTimelock}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitReachoutNotice(t, ctx, b, mark, true)
		ct, err := s.AddContact("5511987654323")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.cli.SendMessage(ctx, ct.JID(), textMsg("cold")); !is463(err) {
			t.Fatalf("send to a new contact: err = %v, want server error 463", err)
		}
		s.ClearFaults()
		waitReachoutNotice(t, ctx, b, mark, false)
	}},
}

// TestFaultsKeepAlive checks black-holed pings: timeouts, then recovery or whatsmeow's forced reconnect.
func TestFaultsKeepAlive(t *testing.T) {
	t.Parallel()
	runOnOneClient(t, keepAliveFaults)
}

// keepAliveFaults black-hole pings.
var keepAliveFaults = []faultCase{
	// The black hole lasts until a ping was missed, not a fixed time: on
	// a loaded machine no ping may fall into a short window.
	{name: "blackhole_pings_restored", fault: Fault{Kind: FaultBlackholePings}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitEvent[*events.KeepAliveTimeout](t, ctx, b.rec, mark)
		s.ClearFaults()
		waitEvent[*events.KeepAliveRestored](t, ctx, b.rec, mark)
	}},
	{name: "blackhole_pings_forced_reconnect", fault: Fault{Kind: FaultBlackholePings}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitEvent[*events.KeepAliveTimeout](t, ctx, b.rec, mark)
		// After KeepAliveMaxFailTime whatsmeow reconnects by itself, without a Disconnected event.
		if _, err := s.WaitEvent(ctx, EventLogin, seq); err != nil {
			t.Fatal(err)
		}
		s.ClearFaults()
		waitEvent[*events.Connected](t, ctx, b.rec, mark)
	}},
}

// runOnOneClient injects the cases one after the other into a single paired client.
func runOnOneClient(t *testing.T, cases []faultCase) {
	s := startServer(t, Options{})
	b := pairQR(t, s)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 20*time.Second)
			mark, seq := b.rec.mark(), s.LastSeq()
			if err := s.Inject(tc.fault); err != nil {
				t.Fatalf("inject: %v", err)
			}
			tc.check(t, ctx, s, b, mark, seq)
		})
	}
}

// TestFaultsTerminal checks the faults after which whatsmeow stays disconnected, each on a fresh account.
func TestFaultsTerminal(t *testing.T) {
	t.Parallel()
	for _, tc := range terminalFaults {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, Options{})
			b := pairQRWith(t, s, func(cli *whatsmeow.Client) { cli.EnableAutoReconnect = !tc.noAutoReconnect })
			b.serverClosed.Store(true)
			ctx := testCtx(t, 20*time.Second)
			mark, seq := b.rec.mark(), s.LastSeq()
			if err := s.Inject(tc.fault); err != nil {
				t.Fatalf("inject: %v", err)
			}
			tc.check(t, ctx, s, b, mark, seq)
			if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
				t.Fatalf("server kept the connection: %v", err)
			}
		})
	}
}

func TestRefusedConnectReturnsStatus503(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 10*time.Second)
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	if err := s.Inject(Fault{Kind: FaultRefuse}); err != nil {
		t.Fatal(err)
	}
	err := b.cli.Connect()
	var se socket.ErrWithStatusCode
	if !errors.As(err, &se) || se.StatusCode != 503 {
		t.Fatalf("connect error = %v, want HTTP 503", err)
	}
	s.ClearFaults()
	mark := b.rec.mark()
	if err := b.cli.Connect(); err != nil {
		t.Fatalf("connect after clearing: %v", err)
	}
	waitEvent[*events.Connected](t, ctx, b.rec, mark)
}

func TestSecondInstanceReplacesFirst(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	b.serverClosed.Store(true)
	ctx := testCtx(t, 10*time.Second)
	mark := b.rec.mark()
	b2 := newBot(t, s, b.dbPath)
	if err := b2.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Connected](t, ctx, b2.rec, 0)
	waitEvent[*events.StreamReplaced](t, ctx, b.rec, mark)
}

// terminalFaults are the faults after which whatsmeow stays disconnected.
var terminalFaults = []faultCase{
	{name: "replaced", fault: Fault{Kind: FaultReplaced}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitEvent[*events.StreamReplaced](t, ctx, b.rec, mark)
	}},
	{name: "replaced_immediate_close", fault: Fault{Kind: FaultReplaced, ImmediateClose: true}, noAutoReconnect: true, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		// Closing at once races with whatsmeow's handler queue: the client may see
		// StreamReplaced, a Disconnected first, or only the Disconnected (the node is
		// lost with the socket). The product must cope with each outcome.
		if _, err := b.rec.wait(ctx, mark, func(e any) bool {
			switch e.(type) {
			case *events.StreamReplaced, *events.Disconnected:
				return true
			}
			return false
		}); err != nil {
			t.Fatalf("neither StreamReplaced nor Disconnected: %v", err)
		}
	}},
	{name: "logout", fault: Fault{Kind: FaultLogout}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		lo := waitEvent[*events.LoggedOut](t, ctx, b.rec, mark)
		if !lo.OnConnect {
			t.Errorf("LoggedOut.OnConnect = false, want true (failure 401 at reconnect)")
		}
		if len(s.LinkedDevices()) != 0 {
			t.Errorf("device still linked: %v", s.LinkedDevices())
		}
	}},
	{name: "device_removed", fault: Fault{Kind: FaultDeviceRemoved}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		lo := waitEvent[*events.LoggedOut](t, ctx, b.rec, mark)
		if lo.OnConnect {
			t.Errorf("LoggedOut.OnConnect = true, want false (stream error)")
		}
	}},
	{name: "ban", fault: Fault{Kind: FaultBan, Duration: 90 * time.Minute}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		ban := waitEvent[*events.TemporaryBan](t, ctx, b.rec, mark)
		if ban.Code != events.TempBanSentToTooManyPeople || ban.Expire < 89*time.Minute || ban.Expire > 90*time.Minute {
			t.Errorf("TemporaryBan = %+v, want code 101 and ~90m", ban)
		}
	}},
	{name: "outdated", fault: Fault{Kind: FaultOutdated}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitEvent[*events.ClientOutdated](t, ctx, b.rec, mark)
	}},
}
