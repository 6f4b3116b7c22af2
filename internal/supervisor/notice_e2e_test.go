package supervisor_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/blacksky-bot/blacksky/internal/backoff"
	"github.com/blacksky-bot/blacksky/internal/sandbox"
	. "github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
	"github.com/blacksky-bot/blacksky/internal/troubleshoot"
)

// helpLines are the lines at level that point to section.
func helpLines(logs *testkit.Logs, level slog.Level, section troubleshoot.Section) []testkit.LogLine {
	var out []testkit.LogLine
	for _, l := range logs.Lines(level, "") {
		if l.Attrs["help"] == section.String() {
			out = append(out, l)
		}
	}
	return out
}

// An outage is said once when it starts, with what to do and where to read,
// and once when it ends; the attempts in between are debug lines.
func TestOutageIsNoticedOnceNotPerAttempt(t *testing.T) {
	for _, c := range []struct {
		fault sandbox.FaultKind
		says  string // what the notice says is wrong
	}{
		{sandbox.FaultDown, "cannot reach WhatsApp"},           // nothing answers
		{sandbox.FaultRefuse, "did not accept the connection"}, // HTTP 503 on upgrade
	} {
		t.Run(string(c.fault), func(t *testing.T) { testOutageNotice(t, c.fault, c.says) })
	}
}

func testOutageNotice(t *testing.T, fault sandbox.FaultKind, says string) {
	logs := testkit.NewLogs()
	h := newHarness(t, func(o *Options) {
		o.Logger = logs.Logger()
		o.Backoff = backoff.Policy{Base: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	})
	h.pair()
	mark := h.mark()
	h.srv.Inject(sandbox.Fault{Kind: fault, Duration: 1500 * time.Millisecond})
	h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDrop}) // refusing alone leaves the open connection be
	h.waitStates(mark, Reconnecting, Connected)

	attempts := logs.Count(slog.LevelDebug, "reconnecting")
	if attempts < 2 {
		t.Fatalf("%d attempts logged during the outage; the test needs several:\n%s", attempts, logs)
	}
	notices := helpLines(logs, slog.LevelWarn, troubleshoot.Offline)
	if len(notices) != 1 {
		t.Fatalf("%d warn lines with help=%s over %d attempts, want exactly 1:\n%s", len(notices), troubleshoot.Offline, attempts, logs)
	}
	if msg := notices[0].Msg; !strings.Contains(msg, says) || !strings.Contains(msg, "retrying by itself") {
		t.Errorf("outage notice %q does not say what is wrong and that it retries", msg)
	}
	loud := 0 // warn and error lines that tell the dial error again
	for _, level := range []slog.Level{slog.LevelWarn, slog.LevelError} {
		for _, l := range logs.Lines(level, "") {
			if strings.Contains(l.Msg+fmt.Sprint(l.Attrs), "dial") {
				loud++
			}
		}
	}
	if loud > 1 {
		t.Errorf("%d warn/error lines tell the dial error over %d attempts, want only the notice:\n%s", loud, attempts, logs)
	}
	back := logs.Lines(slog.LevelInfo, "reached WhatsApp again")
	if len(back) != 1 || back[0].Attrs["down_for"] == "" {
		t.Errorf("lines saying the connection is back: %+v; want one with down_for", back)
	}
}

// An unpaired bot says once how to pair it, however many pairing
// connections and QR codes follow; each code is an info line carrying it.
func TestUnpairedIsNoticedOnce(t *testing.T) {
	logs := testkit.NewLogs()
	h := newHarness(t, func(o *Options) { o.Logger = logs.Logger() })
	ctx := h.ctx(20 * time.Second)
	if err := h.sup.WaitFor(ctx, func(_ Status, p Pairing) bool { return p.QR != "" }); err != nil {
		t.Fatal("no QR code:", err)
	}
	first := h.sup.Pairing().QR
	// A lost pairing connection brings a new one, with new codes.
	h.srv.Inject(sandbox.Fault{Kind: sandbox.FaultDown, Duration: 200 * time.Millisecond})
	if err := h.sup.WaitFor(ctx, func(_ Status, p Pairing) bool { return p.QR != "" && p.QR != first }); err != nil {
		t.Fatal("no new QR code after the reconnect:", err)
	}
	// The line follows the code's publication.
	testkit.WaitFor(t, "a line for each QR code", func() bool { return logs.Count(slog.LevelInfo, "scan this QR code") >= 2 })
	codes := logs.Lines(slog.LevelInfo, "scan this QR code")
	for _, c := range codes {
		if c.Attrs["qr"] == "" {
			t.Errorf("QR line %q carries no qr attribute", c.Msg)
		}
	}
	notices := helpLines(logs, slog.LevelWarn, troubleshoot.NotPaired)
	if len(notices) != 1 {
		t.Fatalf("%d 'not paired' notices over %d QR codes, want 1:\n%s", len(notices), len(codes), logs)
	}
	if msg := notices[0].Msg; !strings.Contains(msg, "/pair") || !strings.Contains(msg, "blacksky pair") {
		t.Errorf("not-paired notice %q does not say how to pair", msg)
	}
	// Paired, the notice is done with.
	if err := h.srv.ScanQR(ctx, h.sup.Pairing().QR); err != nil {
		t.Fatal(err)
	}
	h.waitStates(0, Connected)
	if n := len(helpLines(logs, slog.LevelWarn, troubleshoot.NotPaired)); n != 1 {
		t.Errorf("%d not-paired notices after pairing, want still 1", n)
	}
}

// Each state an operator must act on is logged with its troubleshooting
// section, so the line itself says where to read what to do.
func TestStatesToActOnPointToTheirSection(t *testing.T) {
	for _, c := range []struct {
		fault   sandbox.Fault
		state   State
		section troubleshoot.Section
		pin     bool
	}{
		{sandbox.Fault{Kind: sandbox.FaultBan, Duration: 300 * time.Millisecond}, Banned, troubleshoot.Banned, false},
		{sandbox.Fault{Kind: sandbox.FaultReplaced}, Replaced, troubleshoot.ConnectionReplaced, false},
		{sandbox.Fault{Kind: sandbox.FaultDeviceRemoved}, LoggedOut, troubleshoot.LoggedOut, false},
		{sandbox.Fault{Kind: sandbox.FaultOutdated}, Outdated, troubleshoot.Outdated, true},
	} {
		t.Run(string(c.state), func(t *testing.T) {
			logs := testkit.NewLogs()
			builtin := keepVersion(t)
			h := newHarness(t, func(o *Options) {
				o.Logger = logs.Logger()
				if c.pin { // a pinned version refused is outdated at once
					o.PinnedVersion = revision(builtin, 2)
				}
			})
			h.pair()
			mark := h.mark()
			if err := h.srv.Inject(c.fault); err != nil {
				t.Fatal(err)
			}
			h.waitStates(mark, c.state)
			// The line follows the state change.
			testkit.WaitFor(t, "the "+string(c.state)+" line", func() bool {
				return len(helpLines(logs, slog.LevelError, c.section)) > 0
			})
			if n := len(helpLines(logs, slog.LevelError, c.section)); n != 1 {
				t.Errorf("%d error lines with help=%s on entering %s, want 1:\n%s", n, c.section, c.state, logs)
			}
		})
	}
}
