package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types/events"
)

func TestPairByQRThenLoginWithNewClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 20*time.Second)
	if b.cli.Store.ID == nil || b.cli.Store.ID.User != s.PhoneNumber() {
		t.Fatalf("client stored ID %v, want user %s", b.cli.Store.ID, s.PhoneNumber())
	}
	if b.cli.Store.LID.IsEmpty() || b.cli.Store.LID.Device != b.cli.Store.ID.Device {
		t.Fatalf("client LID %v does not carry device %d", b.cli.Store.LID, b.cli.Store.ID.Device)
	}
	if err := s.WaitFor(ctx, func() bool { return s.CountEvents(EventPreKeysUploaded, 0) > 0 }); err != nil {
		t.Fatal(err)
	}
	conns := s.Connections()
	if len(conns) != 1 || conns[0].JID != b.cli.Store.ID.String() {
		t.Fatalf("connections = %+v", conns)
	}
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}

	// A new client on the same store logs in with the stored credentials.
	b2 := newBot(t, s, b.dbPath)
	if err := b2.cli.Connect(); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	waitEvent[*events.Connected](t, ctx, b2.rec, 0)
	if n := s.CountEvents(EventUnknownIQ, 0); n != 0 {
		t.Logf("unknown iqs answered with errors: %d", n)
	}
}

// connectForCode connects a fresh client and waits for its first QR, as PairPhone requires.
func connectForCode(t *testing.T, s *Server) (*botClient, context.Context) {
	t.Helper()
	b, ctx, _ := connectForQR(t, s)
	return b, ctx
}

// connectForQR connects a fresh client and returns the first QR code it shows.
func connectForQR(t *testing.T, s *Server) (*botClient, context.Context, string) {
	t.Helper()
	b := newBot(t, s, "")
	ctx := testCtx(t, 30*time.Second)
	qrs, err := b.cli.GetQRChannel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	select {
	case item := <-qrs:
		return b, ctx, item.Code
	case <-ctx.Done():
		t.Fatal("no QR event")
	}
	return nil, nil, ""
}

func TestPairByPhoneCode(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b, ctx := connectForCode(t, s)
	code, err := b.cli.PairPhone(ctx, "+"+s.PhoneNumber(), true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		t.Fatalf("pair phone: %v", err)
	}
	if err := s.EnterCode(ctx, code); err != nil {
		t.Fatalf("enter code %s: %v", code, err)
	}
	waitEvent[*events.PairSuccess](t, ctx, b.rec, 0)
	waitEvent[*events.Connected](t, ctx, b.rec, 0)
	if got := s.LinkedDevices(); len(got) != 1 || got[0] != *b.cli.Store.ID {
		t.Fatalf("linked devices %v, client %v", got, b.cli.Store.ID)
	}
}

func TestPairByPhoneCodeRejects(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b, ctx := connectForCode(t, s)
	if _, err := b.cli.PairPhone(ctx, "+4915199999999", true, whatsmeow.PairClientChrome, "Chrome (Linux)"); err == nil {
		t.Error("pairing a number the phone does not own succeeded")
	}
	code, err := b.cli.PairPhone(ctx, s.PhoneNumber(), true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		t.Fatal(err)
	}
	wrong := []byte(strings.ReplaceAll(code, "-", ""))
	wrong[0] = map[bool]byte{true: '2', false: '1'}[wrong[0] == '1']
	if err := s.EnterCode(ctx, string(wrong)); err == nil {
		t.Fatal("a wrong code linked the device")
	}
	if n := len(s.LinkedDevices()); n != 0 {
		t.Fatalf("%d devices linked after a wrong code", n)
	}
}

func TestScanQRRejectsUnknownRef(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	ctx := testCtx(t, 5*time.Second)
	for _, qr := range []string{"", "a,b", "2@nope,AAAA,AAAA,AAAA", "x,!!,??,%%",
		qrLinkPrefix + "2@nope,AAAA,AAAA,AAAA", qrLinkPrefix + "2@nope,AAAA,AAAA,AAAA,", "https://example.com/#2@nope,AAAA,AAAA,AAAA,9"} {
		if err := s.ScanQR(ctx, qr); err == nil {
			t.Errorf("ScanQR(%q) succeeded", qr)
		}
	}
}

// TestScanOldFourPartQR: a phone also links a client that shows the bare
// four-part payload of older whatsmeow versions (ref,noise,identity,adv).
func TestScanOldFourPartQR(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b, ctx, code := connectForQR(t, s)
	link, ok := strings.CutPrefix(code, qrLinkPrefix)
	if !ok {
		t.Fatalf("current whatsmeow shows %q, not a %s link", code, qrLinkPrefix)
	}
	parts := strings.Split(link, ",")
	if err := s.ScanQR(ctx, strings.Join(parts[:4], ",")); err != nil {
		t.Fatalf("scan four-part payload: %v", err)
	}
	waitEvent[*events.Connected](t, ctx, b.rec, 0)
}

func TestKeepAlivePingsAnswered(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 10*time.Second)
	seq := s.LastSeq()
	if err := s.WaitFor(ctx, func() bool { return s.CountEvents(EventPing, seq) >= 2 }); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.rec.since(0) {
		if _, ok := e.(*events.KeepAliveTimeout); ok {
			t.Fatal("keep-alive timed out although pings are answered")
		}
	}
}
