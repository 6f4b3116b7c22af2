package cli

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"rsc.io/qr"

	"github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// A realistic WhatsApp pairing QR payload: ref, noise key, identity key, adv secret.
const sampleQR = "2@Yb7lT3b2n1cQm8yXo5ZrKp0wYV1sJ4eH6aD9fG2hJ5kL8mN0pQ3rS6tU9vW2xY5zA8bC1dE4fG7hI0jK3lM6nO9pQ2rS5t," +
	"QmFzZTY0S2V5MDEyMzQ1Njc4OWFiY2RlZmdoaWprbA==,SWRlbnRpdHlLZXkwMTIzNDU2Nzg5YWJjZGVmZ2hpams=,QWR2U2VjcmV0MDEyMzQ1Njc4OWFiY2RlZmdoaWpr"

var sgr = regexp.MustCompile(`\x1b\[([0-9;]*)m`)

// screen is what a terminal shows for out, one bool per module (true: dark),
// given the terminal's own foreground and background (true: dark).
func screen(t *testing.T, out string, fgDark, bgDark bool) [][]bool {
	t.Helper()
	var rows [][]bool
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasSuffix(line, qrReset) {
			t.Fatalf("line does not end with a colour reset: %q", line)
		}
		fg, bg := fgDark, bgDark
		var top, bottom []bool
		for len(line) > 0 {
			if m := sgr.FindStringSubmatchIndex(line); m != nil && m[0] == 0 {
				params := line[m[2]:m[3]]
				line = line[m[1]:]
				switch params {
				case "", "0":
					fg, bg = fgDark, bgDark
				case "38;5;16;48;5;231":
					fg, bg = true, false
				default:
					t.Fatalf("unexpected colour sequence %q", params)
				}
				continue
			}
			r, size := []rune(line)[0], len(string([]rune(line)[0]))
			line = line[size:]
			switch r {
			case '█':
				top, bottom = append(top, fg), append(bottom, fg)
			case '▀':
				top, bottom = append(top, fg), append(bottom, bg)
			case '▄':
				top, bottom = append(top, bg), append(bottom, fg)
			case ' ':
				top, bottom = append(top, bg), append(bottom, bg)
			default:
				t.Fatalf("unexpected character %q", r)
			}
		}
		rows = append(rows, top, bottom)
	}
	return rows
}

// The drawing is the encoder's symbol with a light quiet zone of 4 modules,
// whatever colours the terminal itself uses.
func TestTerminalQRScansOnLightAndDarkTerminals(t *testing.T) {
	out, err := renderQR(sampleQR)
	if err != nil {
		t.Fatal(err)
	}
	code, err := qr.Encode(sampleQR, qr.L)
	if err != nil {
		t.Fatal(err)
	}
	n := code.Size + 2*quietZone
	if n > 80 {
		t.Errorf("the drawing is %d columns wide; want it to fit 80", n)
	}
	for _, term := range []struct {
		name           string
		fgDark, bgDark bool
	}{{"light terminal", true, false}, {"dark terminal", false, true}} {
		t.Run(term.name, func(t *testing.T) {
			got := screen(t, out, term.fgDark, term.bgDark)
			if len(got) < n || len(got) > n+1 {
				t.Fatalf("%d module rows, want %d (+1 light filler)", len(got), n)
			}
			for y, row := range got {
				if len(row) != n {
					t.Fatalf("row %d has %d modules, want %d", y, len(row), n)
				}
				for x, dark := range row {
					inZone := x < quietZone || y < quietZone || x >= quietZone+code.Size || y >= quietZone+code.Size
					want := !inZone && code.Black(x-quietZone, y-quietZone)
					if dark != want {
						where := "symbol"
						if inZone {
							where = "quiet zone"
						}
						t.Fatalf("module (%d,%d) in the %s is dark=%v, want %v", x, y, where, dark, want)
					}
				}
			}
		})
	}
}

// fakePairing is a supervisor's pairing state the test sets.
type fakePairing struct {
	mu      sync.Mutex
	p       supervisor.Pairing
	changed chan struct{}
}

func newFakePairing() *fakePairing { return &fakePairing{changed: make(chan struct{})} }

func (f *fakePairing) set(p supervisor.Pairing) {
	f.mu.Lock()
	f.p = p
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakePairing) Pairing() supervisor.Pairing {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.p
}

func (f *fakePairing) WaitFor(ctx context.Context, cond func(supervisor.Status, supervisor.Pairing) bool) error {
	for {
		f.mu.Lock()
		p, ch := f.p, f.changed
		f.mu.Unlock()
		if cond(supervisor.Status{}, p) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// The first code is printed at once; codes that follow within a minute are
// not, and when the minute is up the newest one is.
func TestTerminalQRAtMostOncePerMinute(t *testing.T) {
	src := newFakePairing()
	var out syncBuffer
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	waits := make(chan time.Duration, 10)
	fire := make(chan time.Time)
	pr := newQRPrinter(&out, qrReprint)
	pr.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	pr.after = func(d time.Duration) <-chan time.Time { waits <- d; return fire }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { pr.run(ctx, src); close(done) }()
	defer func() { cancel(); <-done }()

	prints := func() int { return strings.Count(out.String(), "Scan with WhatsApp") }
	drawing := func(code string) string {
		d, err := renderQR(code)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	src.set(supervisor.Pairing{QR: sampleQR + "1"})
	testkit.WaitFor(t, "the first code", func() bool { return prints() == 1 })
	if !strings.HasSuffix(out.String(), drawing(sampleQR+"1")) {
		t.Fatal("the first print is not the first code")
	}

	advance(20 * time.Second)
	src.set(supervisor.Pairing{QR: sampleQR + "2"})
	if d := <-waits; d != 40*time.Second {
		t.Errorf("waits %v before the next print, want the rest of the minute (40s)", d)
	}
	advance(20 * time.Second)
	src.set(supervisor.Pairing{QR: sampleQR + "3"})
	if n := prints(); n != 1 {
		t.Fatalf("%d prints within the first minute, want 1", n)
	}
	advance(20 * time.Second)
	fire <- now
	testkit.WaitFor(t, "the newest code after a minute", func() bool { return prints() == 2 })
	if !strings.HasSuffix(out.String(), drawing(sampleQR+"3")) {
		t.Error("after the minute the printer drew an older code, not the newest")
	}

	// Paired meanwhile: the waiting code is never drawn.
	advance(10 * time.Second)
	src.set(supervisor.Pairing{QR: sampleQR + "4"})
	<-waits
	src.set(supervisor.Pairing{Paired: true})
	advance(time.Minute)
	fire <- now
	src.set(supervisor.Pairing{Paired: true, Account: "x"}) // a change the printer sees after its wait
	if n := prints(); n != 2 {
		t.Errorf("%d prints; a code shown after pairing", n)
	}
}

// With LOG_FORMAT=json every line the bot writes is JSON, the QR line
// carries the code, and no drawing is written; in text mode it is.
func TestTerminalQRNeverInJSONLogs(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			sb := startSandbox(t)
			env := botEnv(t, sb, "")
			env["LOG_FORMAT"] = format
			bot := start(t, env)
			waitFor(t, "the QR code's log line", func() bool {
				return strings.Contains(bot.Output(), "scan this QR code")
			}, bot)
			const header = "Scan with WhatsApp > Linked devices"
			if format == "text" {
				waitFor(t, "the QR drawing in text mode", func() bool { return strings.Contains(bot.Output(), header) }, bot)
				return
			}
			// The drawing followed the code's log line at once when it was
			// written; by the time /healthz answers it would be there.
			bot.waitHTTP(t, "/healthz", 200)
			out := bot.Output()
			if strings.Contains(out, header) || strings.Contains(out, qrColours) {
				t.Error("a QR drawing in JSON logs")
			}
			qrLines := 0
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatalf("not a JSON line: %q", line)
				}
				if rec["qr"] != nil {
					qrLines++
				}
			}
			if qrLines == 0 {
				t.Error("no JSON line carries the QR code")
			}
		})
	}
}

// 'blacksky pair' draws the code it logs, with the same renderer (on
// stdout, so a JSON log on stderr stays JSON), and the phone can scan it.
func TestPairCommandDrawsTheQRCode(t *testing.T) {
	sb := startSandbox(t)
	env := botEnv(t, sb, "")
	env["PORT"] = "1" // pair serves no HTTP
	env["LOG_FORMAT"] = "json"
	p := start(t, env, "pair", "--timeout", "30s")
	var code, drawing string
	waitFor(t, "a QR code logged and drawn", func() bool {
		code, drawing = "", ""
		var b strings.Builder
		for _, line := range strings.SplitAfter(p.Output(), "\n") {
			var rec struct{ QR string }
			switch {
			case strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &rec) == nil && rec.QR != "":
				code = rec.QR
			case strings.HasPrefix(line, qrColours):
				b.WriteString(line)
			}
		}
		drawing = b.String()
		return code != "" && strings.HasSuffix(drawing, qrReset+"\n") && strings.Count(drawing, "\n") > 20
	}, p)
	want, err := renderQR(code)
	if err != nil {
		t.Fatal(err)
	}
	if drawing != want {
		t.Fatalf("pair drew something else than the logged code:\n%s", drawing)
	}
	if status := control(t, sb.url, "POST", "/control/phone/scan", map[string]string{"qr": code}, nil); status != http.StatusOK {
		t.Fatalf("scan: %d", status)
	}
	if exit := p.wait(t, 30*time.Second); exit != 0 {
		t.Fatalf("pair exited %d", exit)
	}
}
