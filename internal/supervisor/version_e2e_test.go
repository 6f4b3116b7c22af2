package supervisor_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	wastore "go.mau.fi/whatsmeow/store"

	"github.com/blacksky-bot/blacksky/internal/sandbox"
	. "github.com/blacksky-bot/blacksky/internal/supervisor"
)

// The client version is whatsmeow's process-wide setting. Tests that change
// it are not parallel (parallel tests start after every sequential one has
// ended) and put the built-in version back when they end, after their
// harness has stopped.
func keepVersion(t *testing.T) wastore.WAVersionContainer {
	t.Helper()
	v := wastore.GetWAVersion()
	t.Cleanup(func() { wastore.SetWAVersion(v) })
	return v
}

// revision returns v with n added to its last part: a later WhatsApp Web build.
func revision(v wastore.WAVersionContainer, n uint32) wastore.WAVersionContainer {
	return wastore.WAVersionContainer{v[0], v[1], v[2] + n}
}

// eventsSince returns the sandbox's events of kind after seq.
func (h *harness) eventsSince(seq uint64, kind sandbox.EventKind) []sandbox.Event {
	var out []sandbox.Event
	for _, e := range h.srv.Events() {
		if e.Seq > seq && e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

func (h *harness) alertTexts() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.alerts...)
}

// loggedInWith checks that the sandbox's last login after seq presented version v.
func (h *harness) loggedInWith(seq uint64, v wastore.WAVersionContainer) {
	h.t.Helper()
	logins := h.eventsSince(seq, sandbox.EventLogin)
	if len(logins) == 0 {
		h.t.Fatal("no login")
	}
	if got, want := logins[len(logins)-1].Detail, "version "+v.String(); got != want {
		h.t.Errorf("the sandbox saw the login with %q; want %q", got, want)
	}
}

// Issue 14: WhatsApp raised its minimum past whatsmeow's built-in version.
// The bot takes WhatsApp Web's current version from its page and is back at
// once, without a backoff and without bothering the owner: whether the
// refusal came at the login after a drop, or before a QR code was shown.
func TestRefusedVersionMovesToWhatsAppWebsCurrent(t *testing.T) {
	t.Run("linked", func(t *testing.T) {
		builtin := keepVersion(t)
		h := newHarness(t, nil)
		h.pair()
		current := revision(builtin, 1)
		if _, err := h.srv.SetClientVersions(sandbox.ClientVersions{Minimum: current}); err != nil {
			t.Fatal(err)
		}
		mark, seq := h.mark(), h.srv.LastSeq()
		if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
			t.Fatal(err)
		}
		h.waitStates(mark, Connecting, Connected)
		h.movedTo(mark, seq, builtin, current)
	})
	t.Run("pairing", func(t *testing.T) {
		builtin := keepVersion(t)
		h := newHarness(t, nil)
		ctx := h.ctx(15 * time.Second)
		if err := h.sup.WaitFor(ctx, func(_ Status, p Pairing) bool { return p.QR != "" }); err != nil {
			t.Fatal("no QR code:", err)
		}
		shown := h.sup.Pairing().QR
		current := revision(builtin, 1)
		if _, err := h.srv.SetClientVersions(sandbox.ClientVersions{Minimum: current}); err != nil {
			t.Fatal(err)
		}
		mark, seq := h.mark(), h.srv.LastSeq()
		if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
			t.Fatal(err)
		}
		// The next registration is refused; after the switch a new connection shows new QR codes.
		if err := h.sup.WaitFor(ctx, func(_ Status, p Pairing) bool { return p.QR != "" && p.QR != shown }); err != nil {
			t.Fatalf("no QR code after the version switch: %v (login rejections %v)", err, h.eventsSince(seq, sandbox.EventLoginRejected))
		}
		if err := h.srv.ScanQR(ctx, h.sup.Pairing().QR); err != nil {
			t.Fatal(err)
		}
		h.waitStates(mark, Connected)
		h.movedTo(mark, seq, builtin, current)
	})
}

// movedTo checks that after seq the sandbox refused version from once, served
// its page, and saw the bot log in with version to, with no outdated state
// and no owner alert on the way.
func (h *harness) movedTo(mark int, seq uint64, from, to wastore.WAVersionContainer) {
	h.t.Helper()
	h.checkInvariants()
	for _, s := range h.since(mark) {
		if s.State == Outdated {
			h.t.Errorf("entered %s on the way: %+v", Outdated, s)
		}
	}
	rejected := h.eventsSince(seq, sandbox.EventLoginRejected)
	if len(rejected) != 1 || !strings.Contains(rejected[0].Detail, "version "+from.String()) {
		h.t.Errorf("rejections: %+v; want one, of version %s", rejected, from)
	}
	if pages := h.eventsSince(seq, sandbox.EventVersionPage); len(pages) != 1 || pages[0].Detail != to.String() {
		h.t.Errorf("version page served: %+v; want once, naming %s", pages, to)
	}
	h.loggedInWith(seq, to)
	if got := wastore.GetWAVersion(); got != to {
		h.t.Errorf("whatsmeow's version is %s; want %s", got, to)
	}
	if alerts := h.alertTexts(); len(alerts) != 0 {
		h.t.Errorf("owner alerted: %q", alerts)
	}
}

// WhatsApp refuses every version, even the one WhatsApp Web names: the bot
// tries that one once, then stops in outdated and alerts the owner once.
func TestEveryVersionRefusedEndsOutdatedWithOneAlert(t *testing.T) {
	builtin := keepVersion(t)
	h := newHarness(t, nil)
	h.pair()
	current := revision(builtin, 1)
	if _, err := h.srv.SetClientVersions(sandbox.ClientVersions{Minimum: current}); err != nil {
		t.Fatal(err)
	}
	mark, seq := h.mark(), h.srv.LastSeq()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultOutdated}); err != nil {
		t.Fatal(err)
	}
	h.waitStates(mark, Outdated)
	h.checkInvariants()
	rejected := h.eventsSince(seq, sandbox.EventLoginRejected)
	if len(rejected) != 2 {
		t.Errorf("logins refused: %+v; want two (the built-in version, then WhatsApp Web's)", rejected)
	}
	if got := wastore.GetWAVersion(); got != current {
		t.Errorf("whatsmeow's version is %s; want WhatsApp Web's %s, the one tried last", got, current)
	}
	if st := h.sup.Status(); !strings.Contains(st.Reason, current.String()) {
		t.Errorf("outdated reason %q does not name the refused version %s", st.Reason, current)
	}
	alerts := h.alertTexts()
	if len(alerts) != 1 || !strings.Contains(alerts[0], "upgrade blacksky") {
		t.Errorf("owner alerts: %q; want one saying to upgrade", alerts)
	}
}

// WA_VERSION: the pinned version is presented from the first connection on
// and never replaced: its refusal is outdated at once, without asking
// WhatsApp Web, and the alert says that the pin is refused.
func TestPinnedVersionIsUsedAndNeverReplaced(t *testing.T) {
	builtin := keepVersion(t)
	pin := revision(builtin, 2)
	h := newHarness(t, func(o *Options) { o.PinnedVersion = pin })
	seq := h.srv.LastSeq()
	h.pair()
	h.loggedInWith(seq, pin)
	if _, err := h.srv.SetClientVersions(sandbox.ClientVersions{Minimum: revision(builtin, 3)}); err != nil {
		t.Fatal(err)
	}
	mark, seq := h.mark(), h.srv.LastSeq()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
		t.Fatal(err)
	}
	h.waitStates(mark, Outdated)
	h.checkInvariants()
	if pages := h.eventsSince(seq, sandbox.EventVersionPage); len(pages) != 0 {
		t.Errorf("fetched WhatsApp Web's version although it is pinned: %+v", pages)
	}
	if got := wastore.GetWAVersion(); got != pin {
		t.Errorf("whatsmeow's version is %s; want the pinned %s", got, pin)
	}
	alerts := h.alertTexts()
	if len(alerts) != 1 || !strings.Contains(alerts[0], "WA_VERSION") || !strings.Contains(alerts[0], pin.String()) {
		t.Errorf("owner alerts: %q; want one naming the pinned version and WA_VERSION", alerts)
	}
}

// failingTransport stands for a WhatsApp Web that cannot be reached.
type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network unreachable")
}

// When WhatsApp Web's version cannot be fetched the bot cannot heal itself:
// outdated at once, with the reason, and one alert. The version is left
// alone, so this test may run in parallel.
func TestVersionFetchFailureEndsOutdated(t *testing.T) {
	t.Parallel()
	builtin := wastore.GetWAVersion()
	h := newHarness(t, func(o *Options) { o.ProbeClient = &http.Client{Transport: failingTransport{}} })
	h.pair()
	if _, err := h.srv.SetClientVersions(sandbox.ClientVersions{Minimum: revision(builtin, 1)}); err != nil {
		t.Fatal(err)
	}
	mark := h.mark()
	if err := h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}); err != nil {
		t.Fatal(err)
	}
	h.waitStates(mark, Outdated)
	if st := h.sup.Status(); !strings.Contains(st.Reason, "network unreachable") {
		t.Errorf("outdated reason %q does not say why the fetch failed", st.Reason)
	}
	if alerts := h.alertTexts(); len(alerts) != 1 {
		t.Errorf("owner alerts: %q; want one", alerts)
	}
}
