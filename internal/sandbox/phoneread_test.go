package sandbox

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// The phone reading a chat reaches the linked device as a read receipt of
// its own account's device 0, in the contact's chat, as whatsmeow parses it.
func TestPhoneReadsAChat(t *testing.T) {
	t.Parallel()
	s := startServer(t, Options{})
	b := pairQR(t, s)
	ctx := testCtx(t, 30*time.Second)
	alice, err := s.AddContact("+4915112345678")
	if err != nil {
		t.Fatal(err)
	}
	h := s.ControlHandler()
	post := func(body string) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(context.Background(), "POST", "/control/phone/read", strings.NewReader(body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if rec := post(`{"number":"4915100000000"}`); rec.Code != http.StatusBadRequest {
		t.Errorf("unknown contact: %d %s", rec.Code, rec.Body)
	}
	if rec := post(`{"number":"4915112345678"}`); rec.Code != http.StatusConflict {
		t.Errorf("contact that sent nothing: %d %s", rec.Code, rec.Body)
	}
	mark := b.rec.mark()
	id, err := alice.Send(ctx, "hi")
	if err != nil {
		t.Fatal(err)
	}
	waitEvent[*events.Message](t, ctx, b.rec, mark)
	mark = b.rec.mark()
	if rec := post(`{"number":"4915112345678"}`); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), id) {
		t.Fatalf("phone read: %d %s", rec.Code, rec.Body)
	}
	r := waitEvent[*events.Receipt](t, ctx, b.rec, mark)
	if !r.IsFromMe || r.Sender.Device != 0 || r.Sender.User != s.PhoneNumber() || r.Sender.Server != types.DefaultUserServer ||
		r.Chat != alice.LID() || r.Type != types.ReceiptTypeRead || len(r.MessageIDs) != 1 || r.MessageIDs[0] != id ||
		time.Since(r.Timestamp) > time.Minute {
		t.Fatalf("receipt %+v, want a read of %s by the phone in %s", r, id, alice.LID())
	}
}
