package sandbox

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
)

// The faults of a connection that is up but dead, and of a server that
// kills every connection at login; run with the other recoverable faults.
var deadConnFaults = []faultCase{
	// Without whatsmeow's own reconnect, which races on its error count
	// when a connection dies right after its login (client.go autoReconnect
	// reads AutoReconnectErrors that handleConnectSuccess writes).
	{name: "kill_on_login", fault: Fault{Kind: FaultKillOnLogin, Duration: time.Minute}, noAutoReconnect: true, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		waitDisconnected(t, ctx, s, b, mark)
		// A new connection logs in and is killed at once.
		m, loginSeq := b.rec.mark(), s.LastSeq()
		if err := b.cli.ConnectContext(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitEvent(ctx, EventLogin, loginSeq); err != nil {
			t.Fatal("no login:", err)
		}
		waitDisconnected(t, ctx, s, b, m)
		// Once the fault ends, a connection stays.
		s.ClearFaults()
		m = b.rec.mark()
		if err := b.cli.ConnectContext(ctx); err != nil {
			t.Fatal(err)
		}
		waitEvent[*events.Connected](t, ctx, b.rec, m)
		if _, err := b.cli.SendMessage(ctx, s.AccountJID().ToNonAD(), textMsg("note to self")); err != nil {
			t.Fatal("send after the killing ended:", err)
		}
	}},
	{name: "stuck_sends", fault: Fault{Kind: FaultStuckSends}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		ct, err := s.AddContact("5511987654330")
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.cli.SendMessage(ctx, ct.JID(), textMsg("into the void"), whatsmeow.SendRequestExtra{Timeout: 500 * time.Millisecond})
		if !errors.Is(err, whatsmeow.ErrMessageTimedOut) {
			t.Fatalf("send on a stuck connection: %v, want ErrMessageTimedOut", err)
		}
		if n := len(ct.Inbox()); n != 0 {
			t.Fatalf("a stuck connection delivered %d messages", n)
		}
		if _, err := s.WaitEvent(ctx, EventPing, s.LastSeq()); err != nil {
			t.Fatal("pings are not answered on the stuck connection:", err)
		}
		// A new connection is served again.
		m := b.rec.mark()
		if err := s.Inject(Fault{Kind: FaultDrop}); err != nil {
			t.Fatal(err)
		}
		waitEvent[*events.Connected](t, ctx, b.rec, m)
		if _, err := b.cli.SendMessage(ctx, ct.JID(), textMsg("into the void")); err != nil {
			t.Fatal("send on the new connection:", err)
		}
	}},
	{name: "deaf", fault: Fault{Kind: FaultDeaf}, check: func(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int, seq uint64) {
		ct, err := s.AddContact("5511987654331")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ct.Send(ctx, "hello?"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitEvent(ctx, EventPushWithheld, seq); err != nil {
			t.Fatal("the deaf connection pushed the message:", err)
		}
		// Acks of the bot's own messages still come.
		if _, err := b.cli.SendMessage(ctx, ct.JID(), textMsg("still acked")); err != nil {
			t.Fatal("send on a deaf connection:", err)
		}
		for _, e := range b.rec.since(mark) {
			if m, ok := e.(*events.Message); ok && m.Message.GetConversation() == "hello?" {
				t.Fatal("the deaf connection delivered the contact's message")
			}
		}
		m := b.rec.mark()
		if err := s.Inject(Fault{Kind: FaultDrop}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.rec.wait(ctx, m, func(e any) bool {
			msg, ok := e.(*events.Message)
			return ok && msg.Message.GetConversation() == "hello?"
		}); err != nil {
			t.Fatal("the held-back message did not come on the next connection:", err)
		}
	}},
}

// TestFaultsDeadConnections runs each dead-connection fault on a fresh account.
func TestFaultsDeadConnections(t *testing.T) {
	t.Parallel()
	for _, tc := range deadConnFaults {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, Options{})
			b := pairQRWith(t, s, func(cli *whatsmeow.Client) { cli.EnableAutoReconnect = !tc.noAutoReconnect })
			ctx := testCtx(t, 20*time.Second)
			mark, seq := b.rec.mark(), s.LastSeq()
			if err := s.Inject(tc.fault); err != nil {
				t.Fatalf("inject: %v", err)
			}
			tc.check(t, ctx, s, b, mark, seq)
		})
	}
}

// waitDisconnected waits until the client has let go of its socket, so a
// manual ConnectContext does not find it still connected.
func waitDisconnected(t *testing.T, ctx context.Context, s *Server, b *botClient, mark int) {
	t.Helper()
	waitEvent[*events.Disconnected](t, ctx, b.rec, mark)
	if err := s.WaitFor(ctx, func() bool { return !b.cli.IsConnected() }); err != nil {
		t.Fatal("the client kept its socket:", err)
	}
}
