package sandbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types/events"
)

// newer is builtinVersion's revision plus n: a WhatsApp Web build after the one whatsmeow knows.
func newer(n uint32) store.WAVersionContainer {
	return store.WAVersionContainer{2, 3000, builtinVersion[2] + n}
}

// whatsmeow's GetLatestVersion, through the client that reaches the sandbox,
// reads the sandbox's current version from the page at WhatsApp Web's URL;
// raising the minimum through the control API moves the page along.
func TestVersionPageNamesTheCurrentVersion(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	hc, err := s.Trust().HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	latest := func() store.WAVersionContainer {
		t.Helper()
		v, err := whatsmeow.GetLatestVersion(ctx, hc)
		if err != nil {
			t.Fatalf("GetLatestVersion from the sandbox: %v", err)
		}
		return *v
	}
	if got := latest(); got != builtinVersion {
		t.Errorf("a new sandbox's page names %s; want whatsmeow's built-in %s", got, builtinVersion)
	}
	target := newer(7)
	status, _, raw := doJSON(t, "POST", s.ControlURL()+"/control/version", fmt.Sprintf(`{"minimum":%q}`, target))
	if status != 200 {
		t.Fatalf("raise minimum: %d %s", status, raw)
	}
	want := clientVersionsJSON{Minimum: target.String(), Current: target.String()}
	for name, body := range map[string][]byte{"POST answer": raw, "GET": getBody(t, s.ControlURL()+"/control/version")} {
		var got clientVersionsJSON
		if err := json.Unmarshal(body, &got); err != nil || got != want {
			t.Errorf("%s /control/version = %s; want %+v (current raised to the minimum)", name, body, want)
		}
	}
	if got := latest(); got != target {
		t.Errorf("after raising the minimum the page names %s; want %s", got, target)
	}
	if _, err := s.WaitEvent(ctx, EventVersionPage, 0); err != nil {
		t.Errorf("no %s event: %v", EventVersionPage, err)
	}
}

func getBody(t *testing.T, url string) []byte {
	t.Helper()
	status, _, raw := doJSON(t, "GET", url, "")
	if status != 200 {
		t.Fatalf("GET %s: %d %s", url, status, raw)
	}
	return raw
}

// A linked client stays up when the minimum rises past its version (WhatsApp
// checks at login), and its next login is answered with failure 405, which
// whatsmeow reports as ClientOutdated.
func TestLoginBelowTheMinimumIsRefusedWith405(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 20*time.Second)
	if _, err := s.SetClientVersions(ClientVersions{Minimum: newer(1)}); err != nil {
		t.Fatal(err)
	}
	if !b.cli.IsConnected() || len(s.Connections()) != 1 {
		t.Fatal("raising the minimum ended the open connection")
	}
	b.serverClosed.Store(true)
	mark, seq := b.rec.mark(), s.LastSeq()
	if err := s.Inject(Fault{Kind: FaultDrop}); err != nil {
		t.Fatal(err)
	}
	// whatsmeow's own auto-reconnect logs in again, with its built-in version.
	waitEvent[*events.ClientOutdated](t, ctx, b.rec, mark)
	e, err := s.WaitEvent(ctx, EventLoginRejected, seq)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("outdated: version %s is below the minimum %s", builtinVersion, newer(1)); e.Detail != want || e.JID != b.cli.Store.ID.String() {
		t.Errorf("rejection = %+v; want JID %s, detail %q", e, b.cli.Store.ID, want)
	}
	if err := s.WaitFor(ctx, func() bool { return len(s.Connections()) == 0 }); err != nil {
		t.Fatalf("the refused connection stayed open: %v", err)
	}
}

// WhatsApp refuses an outdated client before it shows a QR code: whatsmeow's
// QR channel says err-client-outdated. At the minimum, the QR codes come.
func TestRegistrationBelowTheMinimumIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	ctx := testCtx(t, 20*time.Second)
	firstQRItem := func() string {
		t.Helper()
		b := newBot(t, s, "")
		qrs, err := b.cli.GetQRChannel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.cli.Connect(); err != nil {
			t.Fatal(err)
		}
		select {
		case item := <-qrs:
			if item.Event != "code" {
				b.serverClosed.Store(true)
			}
			return item.Event
		case <-ctx.Done():
			t.Fatal("no QR channel item")
			return ""
		}
	}
	if _, err := s.SetClientVersions(ClientVersions{Minimum: newer(1)}); err != nil {
		t.Fatal(err)
	}
	if got := firstQRItem(); got != whatsmeow.QRChannelClientOutdated.Event {
		t.Errorf("registration below the minimum: QR channel says %q, want %q", got, whatsmeow.QRChannelClientOutdated.Event)
	}
	if _, err := s.SetClientVersions(ClientVersions{Minimum: builtinVersion}); err != nil {
		t.Fatal(err)
	}
	if got := firstQRItem(); got != "code" {
		t.Errorf("registration at the minimum: QR channel says %q, want a code", got)
	}
}

func TestControlVersionRejectsBadRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	for _, body := range []string{
		`{}`,
		`{"minimum":"x"}`,
		`{"minimum":"2.3000"}`,
		`{"minimum":"-2.3000.1"}`,
		`{"minimum":"2.3000.4294967296"}`,
		`{"minimum":"0.0.0"}`,
		`{"current":"2.3001.5"}`,
		`{"current":"2.3000.1"}`, // below the minimum
		`{"minimum":"2.3000.5","current":"2.3000.4"}`,
		`{"minimum":"2.3000.5","extra":1}`,
	} {
		status, obj, raw := doJSON(t, "POST", s.ControlURL()+"/control/version", body)
		if msg, _ := obj["error"].(string); status != 400 || msg == "" {
			t.Errorf("POST /control/version %s: %d %s; want 400 with an error", body, status, raw)
		}
	}
	if got := s.ClientVersions(); got != defaultVersions() {
		t.Errorf("rejected requests changed the versions to %+v", got)
	}
}

func TestClientVersionsSurviveRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s1 := startServer(t, Options{DataDir: dir})
	want, err := s1.SetClientVersions(ClientVersions{Minimum: newer(3), Current: newer(9)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := startServer(t, Options{DataDir: dir})
	if got := s2.ClientVersions(); got != want {
		t.Errorf("versions after a restart = %+v; want %+v", got, want)
	}
}

func FuzzParseVersion(f *testing.F) {
	for _, seed := range []string{"2.3000.1012345678", "2.3000.-1", "2.3000.4294967296", "1.2", "0.0.0", "02.3000.1", " 2.3000.1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		v, err := parseVersion(text)
		if err != nil {
			if !strings.Contains(err.Error(), "not a version") {
				t.Fatalf("error %q does not say what is wrong", err)
			}
			return
		}
		if v.String() != text || v.IsZero() {
			t.Fatalf("parseVersion(%q) = %s", text, v)
		}
	})
}
