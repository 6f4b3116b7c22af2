package sandbox

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/appstate"
	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/proto/waRoutingInfo"
	"go.mau.fi/whatsmeow/socket"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	waLog "go.mau.fi/whatsmeow/util/log"
)

// sendIQ sends a raw query as whatsmeow does for its own (request.go sendIQ).
func sendIQ(ctx context.Context, b *botClient, xmlns, typ string, content ...waBinary.Node) (*waBinary.Node, error) {
	return b.cli.DangerousInternals().SendIQ(ctx, whatsmeow.DangerousInfoQuery{
		Namespace: xmlns, Type: whatsmeow.DangerousInfoQueryType(typ), To: types.ServerJID, Content: content,
	})
}

// TestLoginQueriesAnswered checks that a client's login draws no refusal and
// that each account query gets the answer its parser expects.
func TestLoginQueriesAnswered(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	if err := s.WaitFor(ctx, func() bool { return s.CountEvents(EventPreKeysUploaded, 0) > 0 }); err != nil {
		t.Fatal(err)
	}
	waitAppStateSynced(t, ctx, b)
	if n := s.CountEvents(EventUnknownIQ, 0); n != 0 {
		t.Fatalf("login drew %d refused queries: %s", n, unknownIQs(s))
	}
	t.Run("digest", func(t *testing.T) { checkKeyDigest(t, ctx, b) })
	t.Run("abt props", func(t *testing.T) { checkABProps(t, ctx, b) })
	t.Run("server props", func(t *testing.T) {
		resp, err := sendIQ(ctx, b, "w", "get", waBinary.Node{Tag: "props", Attrs: waBinary.Attrs{"protocol": "2", "hash": ""}})
		if err != nil {
			t.Fatal(err)
		}
		if props, ok := resp.GetOptionalChildByTag("props"); !ok || props.AttrGetter().OptionalString("hash") == "" {
			t.Fatalf("props answer %s has no hash", resp)
		}
	})
	t.Run("privacy settings", func(t *testing.T) { checkPrivacySettings(t, ctx, b) })
	t.Run("blocklist", func(t *testing.T) { checkBlocklist(t, ctx, b) })
	t.Run("privacy tokens", func(t *testing.T) { checkPrivacyTokens(t, ctx, b) })
	if n := s.CountEvents(EventUnknownIQ, 0); n != 0 {
		t.Fatalf("%d queries refused: %s", n, unknownIQs(s))
	}
	// A query the sandbox does not know is still refused, and recorded.
	_, err := sendIQ(ctx, b, "sandbox:no-such-namespace", "get")
	var iqErr *whatsmeow.IQError
	if !errors.As(err, &iqErr) || iqErr.Code != 501 {
		t.Fatalf("unknown query answered with %v, want a 501 iq error", err)
	}
	if n := s.CountEvents(EventUnknownIQ, 0); n != 1 {
		t.Fatalf("unknown query recorded %d times, want once", n)
	}
}

func unknownIQs(s *Server) string {
	var out []string
	for _, e := range s.Events() {
		if e.Kind == EventUnknownIQ {
			out = append(out, e.Detail)
		}
	}
	return strings.Join(out, "; ")
}

// checkKeyDigest recomputes the digest from the client's own keys, as WhatsApp
// Web's validateLocalKeyBundle does.
func checkKeyDigest(t *testing.T, ctx context.Context, b *botClient) {
	resp, err := sendIQ(ctx, b, "encrypt", "get", waBinary.Node{Tag: "digest"})
	if err != nil {
		t.Fatal(err)
	}
	digest := resp.GetChildByTag("digest")
	st := b.cli.Store
	if reg := nodeBytes(digest.GetChildByTag("registration")); len(reg) != 4 || binary.BigEndian.Uint32(reg) != st.RegistrationID {
		t.Fatalf("registration %x, client has %d", reg, st.RegistrationID)
	}
	h := sha1.New()
	h.Write(st.IdentityKey.Pub[:])
	h.Write(st.SignedPreKey.Pub[:])
	h.Write(st.SignedPreKey.Signature[:])
	list := digest.GetChildByTag("list")
	ids := list.GetChildren()
	if len(ids) < whatsmeow.MinPreKeyCount {
		t.Fatalf("digest lists %d prekeys, the client uploaded more", len(ids))
	}
	for _, idNode := range ids {
		id := binary.BigEndian.Uint32(append([]byte{0}, nodeBytes(idNode)...))
		key, err := st.PreKeys.GetPreKey(ctx, id)
		if err != nil || key == nil {
			t.Fatalf("digest lists prekey %d the client does not have (%v)", id, err)
		}
		h.Write(key.Pub[:])
	}
	if got := nodeBytes(digest.GetChildByTag("hash")); !bytes.Equal(got, h.Sum(nil)) {
		t.Fatalf("digest hash %x, the client's keys hash to %x", got, h.Sum(nil))
	}
}

func checkABProps(t *testing.T, ctx context.Context, b *botClient) {
	resp, err := sendIQ(ctx, b, "abt", "get", waBinary.Node{Tag: "props", Attrs: waBinary.Attrs{"protocol": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	props := resp.GetChildByTag("props")
	values := map[string]string{}
	for _, p := range props.GetChildrenByTag("prop") {
		ag := p.AttrGetter()
		values[ag.String("config_code")] = ag.String("config_value")
	}
	// tctoken_duration, as whatsmeow's tctoken.go assumes.
	if values["865"] != "604800" {
		t.Fatalf("ab props %v lack tctoken_duration", values)
	}
	hash := props.AttrGetter().String("hash")
	resp, err = sendIQ(ctx, b, "abt", "get", waBinary.Node{Tag: "props", Attrs: waBinary.Attrs{"protocol": "1", "hash": hash}})
	if err != nil {
		t.Fatal(err)
	}
	again := resp.GetChildByTag("props")
	if again.AttrGetter().OptionalString("delta_update") != "true" || len(again.GetChildren()) != 0 {
		t.Fatalf("props for a current hash = %s, want an empty delta", resp)
	}
}

func checkPrivacySettings(t *testing.T, ctx context.Context, b *botClient) {
	settings, err := b.cli.TryFetchPrivacySettings(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if settings.LastSeen != types.PrivacySettingAll || settings.GroupAdd != types.PrivacySettingContacts || settings.ReadReceipts != types.PrivacySettingAll {
		t.Fatalf("privacy settings = %+v", settings)
	}
	if _, err := b.cli.SetPrivacySetting(ctx, types.PrivacySettingTypeLastSeen, types.PrivacySettingNone); err != nil {
		t.Fatal(err)
	}
	settings, err = b.cli.TryFetchPrivacySettings(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if settings.LastSeen != types.PrivacySettingNone {
		t.Fatalf("last seen after setting it to none: %q", settings.LastSeen)
	}
}

func checkBlocklist(t *testing.T, ctx context.Context, b *botClient) {
	list, err := b.cli.GetBlocklist(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.JIDs) != 0 || list.DHash == "" {
		t.Fatalf("new account's blocklist = %+v", list)
	}
	pest := types.NewJID("212345678901234", types.HiddenUserServer)
	list, err = b.cli.UpdateBlocklist(ctx, pest, events.BlocklistChangeActionBlock)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.JIDs) != 1 || list.JIDs[0] != pest {
		t.Fatalf("blocklist after blocking %s = %+v", pest, list)
	}
	list, err = b.cli.UpdateBlocklist(ctx, pest, events.BlocklistChangeActionUnblock)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.JIDs) != 0 {
		t.Fatalf("blocklist after unblocking = %+v", list)
	}
}

func checkPrivacyTokens(t *testing.T, ctx context.Context, b *botClient) {
	to := types.NewJID("212345678901234", types.HiddenUserServer)
	resp, err := sendIQ(ctx, b, "privacy", "set", waBinary.Node{Tag: "tokens", Content: []waBinary.Node{{
		Tag: "token", Attrs: waBinary.Attrs{"jid": to, "t": "1790000000", "type": "trusted_contact"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	tokens := resp.GetChildByTag("tokens")
	tok := tokens.GetChildByTag("token")
	if jid, _ := tok.Attrs["jid"].(types.JID); jid != to || len(nodeBytes(tok)) == 0 {
		t.Fatalf("token answer %s", resp)
	}
}

// waitAppStateSynced waits until the client has fetched every app state
// collection, which it does after the phone's key share at its first login:
// until then it has queries in flight, and a fault meanwhile tests the
// retry of those queries as much as what the test is about (it also found a
// data race: third_party/whatsmeow-races.patch, expectedDisconnectChan).
func waitAppStateSynced(t testing.TB, ctx context.Context, b *botClient) {
	t.Helper()
	for _, name := range appstate.AllPatchNames {
		_, err := b.rec.wait(ctx, 0, func(e any) bool {
			done, ok := e.(*events.AppStateSyncComplete)
			return ok && done.Name == name
		})
		if err != nil {
			t.Fatalf("no sync of %s: %v (got %s)", name, err, describe(b.rec.since(0)))
		}
	}
}

// waitNothingPending waits until every device has acknowledged what it was sent.
func waitNothingPending(t testing.TB, ctx context.Context, s *Server) {
	t.Helper()
	err := s.WaitFor(ctx, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, msgs := range s.pending {
			if len(msgs) > 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOfflineMarkerCountsWaitingMessages(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 40*time.Second)
	// The first login's backlog is the phone's app state key share.
	if got := waitEvent[*events.OfflineSyncCompleted](t, ctx, b.rec, 0); got.Count != 1 {
		t.Fatalf("first login: offline count %d, want 1 (the key share)", got.Count)
	}
	waitNothingPending(t, ctx, s)
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}

	alice, err := s.AddContact("4915112345678")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, text := range []string{"while you were away", "and again"} {
		id, err := alice.Send(ctx, text)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	b2 := newBot(t, s, b.dbPath)
	if err := b2.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	done := waitEvent[*events.OfflineSyncCompleted](t, ctx, b2.rec, 0)
	if done.Count != len(ids) {
		t.Fatalf("offline count %d, want %d", done.Count, len(ids))
	}
	// The marker comes after the messages it counts.
	var before []string
	for _, e := range b2.rec.since(0) {
		if e == any(done) {
			break
		}
		if m, ok := e.(*events.Message); ok {
			before = append(before, m.Info.ID)
		}
	}
	if fmt.Sprint(before) != fmt.Sprint(ids) {
		t.Fatalf("messages before the marker %v, want %v", before, ids)
	}

	waitEvent[*events.Connected](t, ctx, b2.rec, 0)
	waitNothingPending(t, ctx, s)
	b2.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}
	b3 := newBot(t, s, b.dbPath)
	if err := b3.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	if got := waitEvent[*events.OfflineSyncCompleted](t, ctx, b3.rec, 0); got.Count != 0 {
		t.Fatalf("login with nothing waiting: offline count %d", got.Count)
	}
}

func TestPushNameLearnedAtLogin(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	waitAppStateSynced(t, ctx, b)
	if got := b.cli.Store.PushName; got != DefaultPushName {
		t.Fatalf("push name after login %q, want %q", got, DefaultPushName)
	}

	// The phone renames the account: the logged-in device follows.
	mark := b.rec.mark()
	if err := s.SetPushName(ctx, "Renamed on the phone"); err != nil {
		t.Fatal(err)
	}
	evt := waitEvent[*events.PushNameSetting](t, ctx, b.rec, mark)
	if evt.Action.GetName() != "Renamed on the phone" || b.cli.Store.PushName != "Renamed on the phone" {
		t.Fatalf("after the phone's rename: event %q, store %q", evt.Action.GetName(), b.cli.Store.PushName)
	}

	// The bot renames the account itself through app state, which the server checks and keeps.
	if err := b.cli.SendAppState(ctx, appstate.BuildSettingPushName("Renamed by the bot")); err != nil {
		t.Fatal(err)
	}
	if got := s.PushName(); got != "Renamed by the bot" {
		t.Fatalf("server's push name after the bot's patch: %q", got)
	}
	if got := b.cli.Store.PushName; got != "Renamed by the bot" {
		t.Fatalf("bot's push name after its own patch: %q", got)
	}
}

// TestAccountChangesReachOtherDevices: a change one device makes reaches the
// account's other devices, as WhatsApp's account_sync and server_sync
// notifications carry it.
func TestAccountChangesReachOtherDevices(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b1 := pairQR(t, s)
	b2 := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	waitAppStateSynced(t, ctx, b1)
	waitAppStateSynced(t, ctx, b2)

	mark := b2.rec.mark()
	if _, err := b1.cli.SetPrivacySetting(ctx, types.PrivacySettingTypeReadReceipts, types.PrivacySettingNone); err != nil {
		t.Fatal(err)
	}
	if evt := waitEvent[*events.PrivacySettings](t, ctx, b2.rec, mark); !evt.ReadReceiptsChanged {
		t.Fatalf("other device saw %+v", evt)
	}
	// whatsmeow leaves the event's NewSettings empty (privacysettings.go
	// handlePrivacySettingsNotification); the change is in its cache.
	if cached, err := b2.cli.TryFetchPrivacySettings(ctx, false); err != nil || cached.ReadReceipts != types.PrivacySettingNone {
		t.Fatalf("other device's settings %+v (%v)", cached, err)
	}

	mark = b2.rec.mark()
	pest := types.NewJID("212345678901234", types.HiddenUserServer)
	if _, err := b1.cli.UpdateBlocklist(ctx, pest, events.BlocklistChangeActionBlock); err != nil {
		t.Fatal(err)
	}
	if evt := waitEvent[*events.Blocklist](t, ctx, b2.rec, mark); len(evt.Changes) != 1 || evt.Changes[0].JID != pest {
		t.Fatalf("other device saw %+v", evt)
	}

	mark = b2.rec.mark()
	if err := b1.cli.SendAppState(ctx, appstate.BuildSettingPushName("Renamed on device one")); err != nil {
		t.Fatal(err)
	}
	if evt := waitEvent[*events.PushNameSetting](t, ctx, b2.rec, mark); evt.Action.GetName() != "Renamed on device one" {
		t.Fatalf("other device saw push name %q", evt.Action.GetName())
	}
}

func TestPushNameSurvivesSandboxRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, Options{DataDir: dir})
	addr := s1.Addr()
	b := pairQR(t, s1)
	ctx := testCtx(t, 40*time.Second)
	waitAppStateSynced(t, ctx, b)
	if err := s1.SetPushName(ctx, "Before restart"); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.PushNameSetting](t, ctx, b.rec, 0)
	mark := b.rec.mark()
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Disconnected](t, ctx, b.rec, mark)

	s2 := startServer(t, Options{DataDir: dir, Listen: addr})
	if got := s2.PushName(); got != "Before restart" {
		t.Fatalf("push name after restart %q", got)
	}
	waitEvent[*events.Connected](t, ctx, b.rec, mark)
	// The replayed collection hashes as the bot's copy does, or its next patch would not verify.
	mark = b.rec.mark()
	if err := s2.SetPushName(ctx, "After restart"); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.PushNameSetting](t, ctx, b.rec, mark)
	if got := b.cli.Store.PushName; got != "After restart" {
		t.Fatalf("bot's push name after the rename on the restarted sandbox: %q", got)
	}
}

// nodeLog keeps whatsmeow's log lines, in a recorder; its "Recv" lines are
// the nodes the client received.
type nodeLog struct{ rec *recorder }

func newNodeLog() *nodeLog { return &nodeLog{rec: newRecorder()} }

func (l *nodeLog) add(msg string, args ...any) { l.rec.handle(fmt.Sprintf(msg, args...)) }

func (l *nodeLog) Warnf(msg string, args ...any)  { l.add(msg, args...) }
func (l *nodeLog) Errorf(msg string, args ...any) { l.add(msg, args...) }
func (l *nodeLog) Infof(msg string, args ...any)  { l.add(msg, args...) }
func (l *nodeLog) Debugf(msg string, args ...any) { l.add(msg, args...) }
func (l *nodeLog) Sub(string) waLog.Logger        { return l }

// find waits for a line matching re and returns its submatches.
func (l *nodeLog) find(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	var m []string
	_, err := l.rec.wait(ctx, 0, func(e any) bool {
		m = re.FindStringSubmatch(e.(string))
		return m != nil
	})
	if err != nil {
		return nil, fmt.Errorf("no log line matching %s: %w", re, err)
	}
	return m, nil
}

// newLoggedBot is newBot with a client whose log is kept.
func newLoggedBot(t *testing.T, s *Server, dbPath string) (*botClient, *nodeLog) {
	t.Helper()
	log := newNodeLog()
	return newBotWithLog(t, s, dbPath, log), log
}

var routingInfoRE = regexp.MustCompile(`<edge_routing><routing_info>([0-9a-f]+)</routing_info></edge_routing>`)

// TestEdgeRoutingHandedOutAndAccepted: a client learns the routing info after
// login, and one that sends it back in front of its connection header, as
// Baileys does, logs in as usual.
func TestEdgeRoutingHandedOutAndAccepted(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	b.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}

	b2, log := newLoggedBot(t, s, b.dbPath)
	if err := b2.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Connected](t, ctx, b2.rec, 0)
	m, err := log.find(ctx, routingInfoRE)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := hex.DecodeString(m[1])
	var ri waRoutingInfo.RoutingInfo
	if err := proto.Unmarshal(info, &ri); err != nil || len(ri.GetRegionID()) == 0 {
		t.Fatalf("routing info %x is not a RoutingInfo (%v)", info, err)
	}
	b2.cli.Disconnect()
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatal(err)
	}

	since := s.LastSeq()
	b3 := newBot(t, s, b.dbPath)
	hc, prefixed := edgeRoutingHTTPClient(t, s.Trust(), info)
	b3.cli.SetWebsocketHTTPClient(hc)
	if err := b3.cli.Connect(); err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Connected](t, ctx, b3.rec, 0)
	if !prefixed.Load() {
		t.Fatal("the connection went out without the routing prefix")
	}
	routed, err := s.WaitEvent(ctx, EventEdgeRouted, since)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(routed.Detail, "(this server's)") {
		t.Fatalf("server read the prefix as %q", routed.Detail)
	}
	if n := s.CountEvents(EventEdgeRoutingSent, since); n != 0 {
		t.Fatalf("routing info handed out again to a client that holds it (%d times)", n)
	}
}

// edgeRoutingHTTPClient dials the sandbox as Trust.HTTPClient does, and puts
// the edge routing prefix (Baileys noise-handler.ts encodeFrame) in front of
// the client's first websocket message, which starts with the WA header.
func edgeRoutingHTTPClient(t *testing.T, trust Trust, info []byte) (*http.Client, *atomic.Bool) {
	t.Helper()
	base, err := trust.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	tr := base.Transport.(*http.Transport).Clone()
	prefix := append([]byte{'E', 'D', 0, 1, byte(len(info) >> 16), byte(len(info) >> 8), byte(len(info))}, info...)
	var prefixed atomic.Bool
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := (&net.Dialer{}).DialContext(ctx, network, trust.Addr)
		if err != nil {
			return nil, err
		}
		conf := tr.TLSClientConfig.Clone()
		conf.ServerName, _, _ = net.SplitHostPort(addr)
		tc := tls.Client(raw, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return &prefixingConn{Conn: tc, prefix: prefix, done: &prefixed}, nil
	}
	return &http.Client{Transport: tr}, &prefixed
}

// prefixingConn rewrites the first client websocket frame that carries the WA header.
type prefixingConn struct {
	net.Conn
	prefix []byte
	done   *atomic.Bool
}

func (c *prefixingConn) Write(b []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Write(b)
	}
	frame, ok := prefixWSFrame(b, c.prefix)
	if !ok {
		return c.Conn.Write(b)
	}
	c.done.Store(true)
	if _, err := c.Conn.Write(frame); err != nil {
		return 0, err
	}
	return len(b), nil
}

// prefixWSFrame returns a masked binary websocket frame (RFC 6455 5.2) whose
// payload, once it starts with the WA header, has prefix put in front.
func prefixWSFrame(b, prefix []byte) ([]byte, bool) {
	if len(b) < 6 || b[0] != 0x82 || b[1]&0x80 == 0 {
		return nil, false
	}
	size, off := int(b[1]&0x7f), 2
	switch size {
	case 126:
		size, off = int(binary.BigEndian.Uint16(b[2:4])), 4
	case 127:
		size, off = int(binary.BigEndian.Uint64(b[2:10])), 10
	}
	mask := b[off : off+4]
	body := b[off+4:]
	if len(body) != size {
		return nil, false
	}
	payload := make([]byte, size)
	for i := range body {
		payload[i] = body[i] ^ mask[i%4]
	}
	if !bytes.HasPrefix(payload, socket.WAConnHeader) {
		return nil, false
	}
	payload = append(append([]byte{}, prefix...), payload...)
	out := []byte{0x82}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n < 1<<16:
		out = append(out, 0x80|126, byte(n>>8), byte(n))
	default:
		out = binary.BigEndian.AppendUint64(append(out, 0x80|127), uint64(n))
	}
	out = append(out, mask...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out, true
}

func TestFrameReaderEdgePrefix(t *testing.T) {
	info := []byte{8, 1, 16, 1}
	f1, _ := encodeFrame([]byte("hello"))
	stream := append(append(append([]byte{'E', 'D', 0, 1, 0, 0, byte(len(info))}, info...), waHeader...), f1...)
	for _, step := range []int{1, 3, len(stream)} {
		var r frameReader
		var got [][]byte
		for _, c := range splitEvery(stream, step) {
			frames, err := r.feed(c)
			if err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			got = append(got, frames...)
		}
		if len(got) != 1 || string(got[0]) != "hello" || !bytes.Equal(r.edge.info, info) {
			t.Fatalf("step %d: frames %q, routing info %x", step, got, r.edge.info)
		}
	}
	var plain frameReader
	if _, err := plain.feed(append(append([]byte(nil), waHeader...), f1...)); err != nil || plain.edge.info != nil {
		t.Fatalf("stream without prefix: err %v, routing info %x", err, plain.edge.info)
	}
	var huge frameReader
	if _, err := huge.feed([]byte{'E', 'D', 0, 1, 0xff, 0xff, 0xff}); err == nil {
		t.Fatal("accepted a 16 MB routing info")
	}
	var bad frameReader
	if _, err := bad.feed([]byte{'E', 'D', 0, 9, 0, 0, 0, 'W', 'A', 6, 3}); err == nil {
		t.Fatal("accepted an unknown prefix version")
	}
}
