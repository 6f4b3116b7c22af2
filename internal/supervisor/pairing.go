package supervisor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow"
)

// WhatsApp Web shows the first QR code for 60 s and each later one for 20 s.
const (
	firstQRLifetime = 60 * time.Second
	laterQRLifetime = 20 * time.Second
)

// qrRotation steps through the QR codes of one pairing connection.
type qrRotation struct {
	codes    []string
	i        int
	deadline time.Time
	timer    *time.Timer
}

func (q *qrRotation) start(codes []string) {
	q.stop()
	q.codes, q.i = codes, 0
	q.arm(firstQRLifetime)
}

func (q *qrRotation) arm(d time.Duration) {
	q.deadline = time.Now().Add(d)
	q.timer = time.NewTimer(d)
}

func (q *qrRotation) current() string {
	if q.i < len(q.codes) {
		return q.codes[q.i]
	}
	return ""
}

// next moves to the following code, reporting false when none is left.
func (q *qrRotation) next() bool {
	q.i++
	if q.i >= len(q.codes) {
		q.timer = nil
		return false
	}
	q.arm(laterQRLifetime)
	return true
}

// expired fires when the current code's time is up; nil (never) when idle.
func (q *qrRotation) expired() <-chan time.Time {
	if q.timer == nil {
		return nil
	}
	return q.timer.C
}

func (q *qrRotation) stop() {
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	q.codes = nil
}

func (s *Supervisor) showQR(code string, expires time.Time) {
	s.update(func(_ *Status, p *Pairing) {
		p.QR, p.QRExpires = code, expires
	})
	s.setState(Unpaired, "waiting for the QR code to be scanned", nil)
	s.log.Info("scan this QR code with WhatsApp (Linked devices), or open /pair", "qr", code, "expires", expires.Format(time.RFC3339))
}

// ErrNotPairing is returned when a pairing code is asked for while no
// pairing connection is open.
var ErrNotPairing = errors.New("not waiting for pairing: the bot is paired or not connected yet")

// RequestPairCode asks WhatsApp for a code to link the bot by typing it on
// the phone of phoneNumber; the request is repeated on every new pairing
// connection until the bot is paired.
func (s *Supervisor) RequestPairCode(ctx context.Context, phoneNumber string) (string, error) {
	s.update(func(_ *Status, p *Pairing) { p.CodePhone, p.Code = phoneNumber, "" })
	cli := s.Client()
	if cli.Store.ID != nil || !cli.IsConnected() {
		return "", ErrNotPairing
	}
	return s.requestCode(ctx, cli, phoneNumber)
}

func (s *Supervisor) requestCode(ctx context.Context, cli *whatsmeow.Client, phoneNumber string) (string, error) {
	code, err := cli.PairPhone(ctx, phoneNumber, true, whatsmeow.PairClientChrome, "Chrome (Linux)")
	if err != nil {
		return "", fmt.Errorf("request pairing code: %w", err)
	}
	s.update(func(_ *Status, p *Pairing) { p.Code = code })
	s.log.Info("enter this code on the phone (Linked devices > Link with phone number)", "code", code, "phone", phoneNumber)
	return code, nil
}

// maybeRequestCode asks for a pairing code on a new pairing connection when
// a phone number was configured; it runs aside so the loop keeps listening.
func (s *Supervisor) maybeRequestCode(ctx context.Context, cli *whatsmeow.Client) {
	// A code belongs to one connection: the old one died with it.
	var phoneNumber string
	s.update(func(_ *Status, p *Pairing) { phoneNumber, p.Code = p.CodePhone, "" })
	if phoneNumber == "" {
		return
	}
	go func() {
		if _, err := s.requestCode(ctx, cli, phoneNumber); err != nil {
			s.log.Error("pairing code", "err", err)
		}
	}()
}

// Reconnect ends the current connection and connects again at once, as an
// operator's "reconnect" command asks; it never logs out.
func (s *Supervisor) Reconnect() {
	s.send(signal{kind: sigRestart, reason: "reconnect requested by the operator"})
}
