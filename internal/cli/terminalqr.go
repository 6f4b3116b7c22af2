package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"rsc.io/qr"

	"github.com/blacksky-bot/blacksky/internal/supervisor"
)

// The terminal QR code. It is drawn with explicit colours, dark modules on
// a light background, so it scans whatever the terminal's own colours are
// (the old drawing used the terminal's default background for dark modules
// and scanned only on a dark one), with a light quiet zone of quietZone
// modules all round, as scanners need. Two module rows make one text line
// (half blocks), so WhatsApp's codes (about 45 modules) fit 80 columns.
//
// Why not qrterminal's GenerateWithConfig: its half-block mode draws the
// outermost border line with the module glyphs, so with explicit colours one
// edge always gets a dark half row just outside the quiet zone, and it
// repeats the colours in every glyph; its full-block mode is twice as wide
// (over 100 columns for these codes).
const (
	quietZone = 4
	// 256-colour black foreground on white background: set once per line
	// and reset at its end, so nothing leaks into the log lines that follow.
	qrColours = "\x1b[38;5;16;48;5;231m"
	qrReset   = "\x1b[0m"
)

// renderQR draws text as a QR code for a terminal.
func renderQR(text string) (string, error) {
	code, err := qr.Encode(text, qr.L)
	if err != nil {
		return "", fmt.Errorf("encode QR code: %w", err)
	}
	n := code.Size + 2*quietZone
	dark := func(x, y int) bool {
		x, y = x-quietZone, y-quietZone
		return x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
	}
	var b strings.Builder
	// An odd height gets one more light row at the bottom.
	for y := 0; y < n; y += 2 {
		b.WriteString(qrColours)
		for x := range n {
			switch top, bottom := dark(x, y), dark(x, y+1); {
			case top && bottom:
				b.WriteString("█")
			case top:
				b.WriteString("▀")
			case bottom:
				b.WriteString("▄")
			default:
				b.WriteString(" ")
			}
		}
		b.WriteString(qrReset + "\n")
	}
	return b.String(), nil
}

// qrReprint is the least time between two terminal QR codes while running:
// whatsmeow brings a new code every 20 s, and printing each one made about
// 4,400 log lines an hour on Heroku.
const qrReprint = time.Minute

// qrPrinter draws new QR codes on w, at most one per every (0: each one).
type qrPrinter struct {
	w     io.Writer
	every time.Duration
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
}

func newQRPrinter(w io.Writer, every time.Duration) *qrPrinter {
	return &qrPrinter{w: w, every: every, now: time.Now, after: time.After}
}

// run prints the first code at once and then the newest one whenever a new
// one appears and every has passed since the last print, until ctx ends.
func (q *qrPrinter) run(ctx context.Context, sup pairingSource) {
	printed := ""
	var at time.Time
	for {
		err := sup.WaitFor(ctx, func(_ supervisor.Status, p supervisor.Pairing) bool {
			return p.QR != "" && p.QR != printed && !p.Paired
		})
		if err != nil {
			return
		}
		if !at.IsZero() {
			if wait := at.Add(q.every).Sub(q.now()); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-q.after(wait):
				}
				continue // the code may have changed or gone meanwhile
			}
		}
		p := sup.Pairing()
		if p.QR == "" || p.QR == printed || p.Paired {
			continue
		}
		drawing, err := renderQR(p.QR)
		if err != nil {
			fmt.Fprintf(q.w, "cannot draw the QR code (%v); open /pair instead\n", err)
			return
		}
		fmt.Fprint(q.w, "Scan with WhatsApp > Linked devices > Link a device:\n"+drawing)
		printed, at = p.QR, q.now()
	}
}
