package supervisor_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/blacksky-bot/blacksky/internal/supervisor"
	"github.com/blacksky-bot/blacksky/internal/testkit"
)

// The phone is seen when it links the device; /status shows when. Once the
// stored sighting is over 10 days old (aged in the database: WhatsApp sends
// no "last seen" the sandbox could fake), the next check (at a connect)
// warns the owner once; the phone reading a chat is seen again, which ends
// the warning, and a later aging warns again.
func TestPhoneLastSeenWarnsOnce(t *testing.T) {
	for _, kind := range testkit.Engines {
		t.Run(string(kind), func(t *testing.T) {
			st := testkit.Store(t, kind)
			alerts := make(chan string, 10)
			h := newHarness(t, func(o *Options) {
				o.Store = st
				o.Alert = func(_ context.Context, text string) {
					if strings.Contains(text, "phone") {
						alerts <- text
					}
				}
			})
			h.pair()
			ctx := h.ctx(30 * time.Second)
			seen := func(cond func(time.Time) bool) time.Time {
				t.Helper()
				var at time.Time
				if err := h.sup.WaitFor(ctx, func(s Status, _ Pairing) bool {
					if s.PhoneLastSeen == nil || !cond(*s.PhoneLastSeen) {
						return false
					}
					at = *s.PhoneLastSeen
					return true
				}); err != nil {
					t.Fatalf("phone last seen %v: %v", h.sup.Status().PhoneLastSeen, err)
				}
				return at
			}
			linked := seen(func(at time.Time) bool { return time.Since(at) < time.Minute })
			rec := httptest.NewRecorder()
			// As an operator on the bot's machine asks: without API_TOKEN,
			// /status answers this machine only.
			req := httptest.NewRequest("GET", "http://127.0.0.1:8080/status", nil)
			req.RemoteAddr = "127.0.0.1:1234"
			h.api.ServeHTTP(rec, req)
			var body struct {
				PhoneLastSeen time.Time `json:"phone_last_seen"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !body.PhoneLastSeen.Equal(linked) {
				t.Fatalf("/status phone_last_seen %v (%v), want %v: %s", body.PhoneLastSeen, err, linked, rec.Body)
			}

			age := func() time.Time {
				t.Helper()
				old := time.UnixMilli(time.Now().Add(-11 * 24 * time.Hour).UnixMilli())
				if _, err := st.DB().ExecContext(ctx, `UPDATE blacksky_phone SET last_seen = $1 WHERE session_id = 'test'`, old.UnixMilli()); err != nil {
					t.Fatal(err)
				}
				h.sup.Reconnect()
				return old
			}
			warned := func(old time.Time) {
				t.Helper()
				select {
				case text := <-alerts:
					if !strings.Contains(text, old.UTC().Format(time.RFC3339)) || !strings.Contains(text, "11 days ago") {
						t.Errorf("alert %q does not name %s", text, old.UTC().Format(time.RFC3339))
					}
				case <-ctx.Done():
					t.Fatal("no alert about the phone")
				}
			}
			old := age()
			warned(old)
			seen(func(at time.Time) bool { return at.Equal(old) })

			// Once only: another connect checks again and says nothing.
			mark := h.mark()
			h.sup.Reconnect()
			h.waitStates(mark, Connected)
			if err := h.sup.WaitFor(ctx, func(s Status, _ Pairing) bool { return s.State == Connected }); err != nil {
				t.Fatal(err)
			}
			contact, err := h.srv.AddContact("15550000009")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := contact.Send(ctx, "hi"); err != nil {
				t.Fatal(err)
			}
			if err := h.srv.WaitFor(ctx, func() bool { return len(contact.Receipts()) > 0 }); err != nil {
				t.Fatal(err)
			}
			if _, err := h.srv.PhoneReads(contact.Number()); err != nil {
				t.Fatal(err)
			}
			seen(func(at time.Time) bool { return time.Since(at) < time.Minute })
			select {
			case text := <-alerts:
				t.Fatalf("warned twice: %q", text)
			default:
			}
			p, ok, err := st.Phone(ctx, "test")
			if err != nil || !ok || p.Warned {
				t.Fatalf("stored phone %+v %v %v, want the warning cleared", p, ok, err)
			}
			warned(age())
		})
	}
}
